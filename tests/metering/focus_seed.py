"""A known ledger of May 2023 for the FOCUS export tests, and helpers to fetch and read exports.

A tenant with a 25 % markup and a project, whose per-token rows cross a price change recorded in
price_versions; flat-fee xpay calls (one charged, one failed); quoted Orthogonal calls, one priced
from a quote and one from an estimate; a model missing from every catalog; a tenant with estimated
tokens and a row naming a price version nobody recorded; rows just outside the month.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import pytest

from service.catalog.loader import default_catalog_text, load_catalog
from service.metering.events import UsageEvent
from service.metering.ledger import write_batch
from tests.support import TenantKey, create_tenant_with_key

PERIOD = "2023-05"
BUNDLED = load_catalog().version
MONEY = ("BilledCost", "EffectiveCost", "ContractedCost", "ListCost")


@dataclass
class FocusLedger:
    acme: TenantKey  # markup 0.25, project "search"
    beta: TenantKey  # markup 0
    project_id: uuid.UUID
    events: list[UsageEvent]

    @property
    def tenant_ids(self) -> set[str]:
        return {str(self.acme.tenant_id), str(self.beta.tenant_id)}


def _event(tenant: TenantKey, n: int, at: datetime, front_end: str, model: str, version: str, *,
           provider: str, markup: str = "0", prompt: int = 0, cached: int = 0, completion: int = 0,
           source: str = "computed", estimated: bool = False, status: str = "ok", project: uuid.UUID | None = None,
           tags: tuple[str, ...] = ()) -> UsageEvent:
    cost = Decimal(provider)
    return UsageEvent(
        request_id=f"focus_{tenant.tenant_name}_{n}", attempt=1, tenant_id=tenant.tenant_id, key_id=None,
        requested_model=model, served_model=model, front_end=front_end, route=f"{front_end}:{model}",
        status=status, error_code=None if status == "ok" else "upstream_error",
        http_status=200 if status == "ok" else 502, stream=False, client_disconnected=False,
        prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion, reasoning_tokens=0,
        provider_cost_usd=cost, billed_usd=(cost * (1 + Decimal(markup))).quantize(Decimal("1E-10")),
        price_version=version, cost_source=source, estimated=estimated, upstream_request_id=None,
        started_at=at, first_token_at=None, ended_at=at + timedelta(seconds=1), project_id=project, tags=tags)


def _recorded_catalog(version: str, input_price: str) -> str:
    raw = json.loads(default_catalog_text())
    raw["version"] = version
    for route in raw["routes"]:
        if (route["model"], route["front_end"]) == ("zai-org/GLM-4.6", "baseten"):
            route["pricing"] = {"kind": "per_token", "input_per_mtok": input_price, "output_per_mtok": "2.00",
                                "cached_input_per_mtok": "0.05"}
    return json.dumps(raw)


@pytest.fixture(scope="session")
def focus_ledger(database_url) -> FocusLedger:
    sfx = uuid.uuid4().hex[:6]
    acme = create_tenant_with_key(database_url, f"focus-acme-{sfx}", markup="0.25")
    beta = create_tenant_with_key(database_url, f"focus-beta-{sfx}")
    project = uuid.uuid4()
    v1, v2 = f"focus-v1-{sfx}", f"focus-v2-{sfx}"
    day = datetime(2023, 5, 3, tzinfo=UTC)
    glm, oss = "zai-org/GLM-4.6", "openai/gpt-oss-120b"
    events = [
        # 6000 input at 0.50, 4000 cached at 0.05, 2000 output at 2.00 per million: 0.0072.
        _event(acme, 1, day + timedelta(hours=10, minutes=5), "baseten", glm, v1, provider="0.0072", markup="0.25",
               prompt=10_000, cached=4_000, completion=2_000, project=project, tags=("nightly", "batch")),
        # After the price change: 5000 input at 0.70, 1000 output at 2.00: 0.0055.
        _event(acme, 2, day + timedelta(hours=10, minutes=40), "baseten", glm, v2, provider="0.0055", markup="0.25",
               prompt=5_000, completion=1_000, project=project, tags=("batch", "nightly", "batch")),
        _event(acme, 3, day + timedelta(hours=11), "xpay", glm, BUNDLED, provider="0.01", markup="0.25",
               prompt=900, completion=80, source="receipt"),
        _event(acme, 4, day + timedelta(hours=11, minutes=1), "xpay", glm, BUNDLED, provider="0", status="error"),
        _event(acme, 5, day + timedelta(days=1, hours=2), "orthogonal", glm, BUNDLED, provider="0.0042",
               markup="0.25", prompt=1_200, completion=300, source="quote"),
        _event(acme, 6, day + timedelta(days=1, hours=3), "orthogonal", glm, BUNDLED, provider="0.003",
               markup="0.25", prompt=1_000, completion=200, source="estimated"),
        _event(acme, 7, day + timedelta(days=2), "baseten", "acme/not-in-any-catalog", BUNDLED, provider="0.002",
               markup="0.25", prompt=100, completion=10),
        # 3000 input at 0.10 and 500 output at 0.50 (the bundled prices), tokens estimated.
        _event(beta, 1, datetime(2023, 5, 31, 23, 59, 59, tzinfo=UTC), "baseten", oss, BUNDLED, provider="0.00055",
               prompt=3_000, completion=500, source="estimated", estimated=True),
        _event(beta, 2, datetime(2023, 5, 31, 23, 0, tzinfo=UTC), "baseten", oss, f"never-recorded-{sfx}",
               provider="0.00015", prompt=1_000, completion=100),
        _event(beta, 3, datetime(2023, 4, 30, 23, 59, 59, 999999, tzinfo=UTC), "baseten", oss, BUNDLED,
               provider="0.5", prompt=1, completion=1),
        _event(beta, 4, datetime(2023, 6, 1, tzinfo=UTC), "baseten", oss, BUNDLED, provider="0.5", prompt=1,
               completion=1),
    ]

    async def seed() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("INSERT INTO projects (id, tenant_id, name) VALUES ($1, $2, 'search')",
                               project, acme.tenant_id)
            # Effective far in the future, so no running service takes them for its current prices.
            for version, price in ((v1, "0.50"), (v2, "0.70")):
                await conn.execute(
                    "INSERT INTO price_versions (version, effective_from, catalog)"
                    " VALUES ($1, '2999-01-01T00:00:00Z', $2::jsonb)", version, _recorded_catalog(version, price))
            await write_batch(conn, events)
            await write_batch(conn, events[:3])  # a replayed batch is stored once
        finally:
            await conn.close()

    asyncio.run(seed())
    return FocusLedger(acme, beta, project, events)


def focus(client: httpx.Client, path: str, fmt: str = "csv", granularity: str | None = None,
           period: str = PERIOD) -> httpx.Response:
    params = {"period": period, "format": fmt, **({"granularity": granularity} if granularity else {})}
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r


def csv_rows(text: str, tenants: set[str] | None = None) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [r for r in rows if tenants is None or r["SubAccountId"] in tenants]
