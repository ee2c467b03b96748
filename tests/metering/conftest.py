"""Fixtures for the admin, usage and export tests: an admin HTTP client and a known ledger.

The known ledger lives in February 2024, a month no other test writes to, so exact totals can
be asserted while other tests' traffic lands in the current month.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest

from service.metering.events import UsageEvent
from service.metering.ledger import write_batch
from tests.metering.focus_seed import focus_ledger  # noqa: F401 (a session fixture for the FOCUS tests)
from tests.metering.usage_ledger import Attributed, build_attributed
from tests.support import TenantKey, create_tenant_with_key

ADMIN_TOKEN = "test-admin-token-0123456789"  # what tests.support.gateway_env configures
MONTH = date(2024, 2, 1)
# direct_billed_usd is the always-Baseten-direct baseline as the rollups sum it (a row without a
# direct price counts at what it was billed); savings_usd is derived: direct minus billed.
MONEY_FIELDS = ("provider_cost_usd", "billed_usd", "direct_billed_usd", "savings_usd")
TOKEN_FIELDS = ("prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens")


@pytest.fixture
def admin(gateway):
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=20) as c:
        yield c


@pytest.fixture
def anon(gateway):
    with httpx.Client(base_url=gateway.url, timeout=20) as c:
        yield c


@dataclass
class Ledger:
    tenants: list[TenantKey]
    events: list[UsageEvent]  # every distinct row written, inside and outside the month

    def in_month(self, tenant_id: uuid.UUID | None = None) -> list[UsageEvent]:
        end = datetime(2024, 3, 1, tzinfo=UTC)
        start = datetime(2024, 2, 1, tzinfo=UTC)
        return [e for e in self.events if start <= e.started_at < end
                and (tenant_id is None or e.tenant_id == tenant_id)]

    def daily(self, events: list[UsageEvent]) -> dict[tuple, dict]:
        """(tenant_id, day, model, front_end) -> sums, as the rollup should hold them."""
        out: dict[tuple, dict] = defaultdict(lambda: {
            "requests": 0, "attempts": 0, **dict.fromkeys(TOKEN_FIELDS, 0),
            **{f: Decimal(0) for f in MONEY_FIELDS}})
        for e in events:
            row = out[(e.tenant_id, e.started_at.astimezone(UTC).date(), e.served_model, e.front_end)]
            row["requests"] += e.status == "ok"
            row["attempts"] += 1
            for f in (*TOKEN_FIELDS, "provider_cost_usd", "billed_usd"):
                row[f] += getattr(e, f)
            direct = e.direct_billed_usd if e.direct_billed_usd is not None else e.billed_usd
            row["direct_billed_usd"] += direct
            row["savings_usd"] += direct - e.billed_usd
        return out


_MODELS = ("openai/gpt-oss-120b", "moonshotai/Kimi-K2.5", "zai-org/GLM-4.6")
_FRONT_ENDS = ("baseten", "xpay", "orthogonal")
_MOMENTS = (
    datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),  # the month before: never exported
    datetime(2024, 2, 1, 0, 0, 0, tzinfo=UTC),
    datetime(2024, 2, 1, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 14, 12, 30, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
    datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC),  # the month after
)


def _events(tenants: list[TenantKey], rng: random.Random) -> list[UsageEvent]:
    events = []
    run = uuid.uuid4().hex[:8]
    for n in range(90):
        tenant = tenants[n % len(tenants)]
        # Odd rows are nudged off the exact moment, even ones share it (ties for keyset paging).
        nudge = timedelta(microseconds=rng.randrange(0, 1000) * (n % 2))
        started = _MOMENTS[rng.randrange(len(_MOMENTS))] + nudge
        front_end = rng.choice(_FRONT_ENDS)
        ok = rng.random() < 0.8
        prompt = rng.randrange(1, 50_000)
        completion = rng.randrange(0, 4_000) if ok else 0
        cost = Decimal("0.01") if front_end == "xpay" else (Decimal(prompt) * Decimal("0.60")
                                                          + Decimal(completion) * Decimal("3.00")) / 1_000_000
        cost = cost.quantize(Decimal("1E-10"))
        # What Baseten direct would have billed: the same for a Baseten row, its token price for a
        # marketplace's answered row (so xpay's flat fee shows a saving or an overspend), none for
        # a failure (no answer to compare).
        direct_cost = ((Decimal(prompt) * Decimal("0.60") + Decimal(completion) * Decimal("3.00")) / 1_000_000
                       * Decimal("1.2")).quantize(Decimal("1E-10"))
        # The same draws in the same order as a loop: the range is evaluated first.
        events.extend(UsageEvent(
            request_id=f"req_{run}_{n:03d}", attempt=attempt, tenant_id=tenant.tenant_id, key_id=None,
            requested_model="auto", served_model=rng.choice(_MODELS), front_end=front_end,
            route=f"{front_end}:x", status="ok" if ok or attempt > 1 else "error",
            error_code=None if ok else "upstream_error", http_status=200 if ok else 502,
            stream=bool(n % 3),
            client_disconnected=False, prompt_tokens=prompt, cached_tokens=prompt // 4,
            completion_tokens=completion, reasoning_tokens=completion // 3, provider_cost_usd=cost,
            billed_usd=(cost * Decimal("1.2")).quantize(Decimal("1E-10")), price_version="2024-01-01",
            direct_billed_usd=direct_cost if ok or attempt > 1 else None,
            cost_source="computed", estimated=not ok, upstream_request_id=None,
            started_at=started, first_token_at=None, ended_at=started + timedelta(seconds=2),
        ) for attempt in range(1, rng.choice((1, 1, 2)) + 1))
    return events


@pytest.fixture(scope="session")
def ledger(database_url) -> Ledger:
    """Three tenants (named so their sort order differs from creation order) and rows written with replays."""
    suffix = uuid.uuid4().hex[:6]
    tenants = [create_tenant_with_key(database_url, f"{name}-{suffix}") for name in ("zeta", "alpha", "mid")]
    events = _events(tenants, random.Random(20240229))

    async def write() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await write_batch(conn, events[:60])
            await write_batch(conn, events[30:])  # overlaps the first batch: a retried batch
            await write_batch(conn, events)  # a full replay of a spill file
            # A replay of a row rebuilt from the spill file: equal values, new object.
            await write_batch(conn, [replace(events[0])])
        finally:
            await conn.close()

    asyncio.run(write())
    return Ledger(tenants, events)


@pytest.fixture
def cli_env(monkeypatch, database_url, tmp_path):
    """The CLI in-process against the test database, with no catalog a developer's shell may name."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    for name in ("SWITCHYARD_CATALOG", "SWITCHYARD_CATALOG_OVERRIDES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def attributed(database_url: str) -> Attributed:
    """Built once: the reads' tests in several modules sum the same rows."""
    return asyncio.run(build_attributed(database_url))


@pytest.fixture(scope="session")
def http(gateway):
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30) as c:
        yield c
