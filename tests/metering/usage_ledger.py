"""A known ledger for the usage reads' tests: two tenants with projects, keys, tags and end users,
in April 2024 (a month no other test writes to), and the sums every read must equal, from the rows themselves."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from service.auth import projects, tenants
from service.metering.events import UsageEvent
from service.metering.ledger import write_batch

COUNTS = ("requests", "attempts", "prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens")
MONEY = ("provider_cost_usd", "billed_usd")
FIRST, LAST = date(2024, 4, 1), date(2024, 4, 30)
RANGE = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
_MOMENTS = (
    datetime(2024, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),  # the day before the range
    datetime(2024, 4, 1, tzinfo=UTC),
    datetime(2024, 4, 1, 23, 59, 59, tzinfo=UTC),
    datetime(2024, 4, 15, 12, tzinfo=UTC),
    datetime(2024, 4, 30, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 5, 1, tzinfo=UTC),  # the day after
)
TAGS = ("red", "green", "blue")
_USERS = ("u1", "u2", "u3", None)


@dataclass
class Org:
    tenant: Any
    key: str  # a plaintext key of the tenant, for /v1
    projects: list[Any]
    keys: list[Any]  # key records: in project 0, in project 1, in no project


@dataclass
class Attributed:
    orgs: list[Org]
    events: list[UsageEvent]

    def in_range(self) -> list[UsageEvent]:
        start = datetime(2024, 4, 1, tzinfo=UTC)
        return [e for e in self.events if start <= e.started_at < start + timedelta(days=30)]


def _events(orgs: list[Org], rng: random.Random) -> list[UsageEvent]:
    run = uuid.uuid4().hex[:8]
    out = []
    for n in range(160):
        org = orgs[n % len(orgs)]
        key = rng.choice([*org.keys, None])
        project = key.project_id if key is not None else None
        if key is not None and rng.random() < 0.15:
            project = rng.choice(org.projects).id  # the key was in another project back then
        started = rng.choice(_MOMENTS) + timedelta(microseconds=rng.randrange(0, 999) * (n % 2))
        ok = rng.random() < 0.8
        prompt, completion = rng.randrange(1, 40_000), rng.randrange(0, 3_000)
        cost = (Decimal(prompt) * Decimal("0.6") + Decimal(completion) * Decimal(3)) / 1_000_000
        cost = cost.quantize(Decimal("1E-10"))
        tags = tuple(t for t in TAGS if rng.random() < 0.4)
        # The same draws in the same order as a loop: the range is evaluated first.
        out.extend(UsageEvent(
            request_id=f"req_{run}_{n:03d}", attempt=attempt, tenant_id=org.tenant.id,
            key_id=key.id if key is not None else None, requested_model="auto",
            served_model=rng.choice(("openai/gpt-oss-120b", "moonshotai/Kimi-K2.5")),
            front_end=rng.choice(("baseten", "xpay")), route="x", status="ok" if ok else "error",
            error_code=None if ok else "upstream_error", http_status=200, stream=False,
            client_disconnected=False, prompt_tokens=prompt, cached_tokens=prompt // 5,
            completion_tokens=completion, reasoning_tokens=completion // 4, provider_cost_usd=cost,
            billed_usd=(cost * Decimal("1.25")).quantize(Decimal("1E-10")), price_version="v",
            cost_source="computed", estimated=False, upstream_request_id=None, started_at=started,
            first_token_at=None, ended_at=started + timedelta(seconds=1), project_id=project,
            end_user=rng.choice(_USERS), tags=tags, metadata={"n": str(n)} if n % 3 == 0 else None,
        ) for attempt in range(1, rng.choice((1, 1, 2)) + 1))
    return out


# ---- what the ledger says ----------------------------------------------------------------------------

def _values(e: UsageEvent, key: str) -> list[Any]:
    """The group values a row counts under for one key (a row counts under each of its tags)."""
    ident = {"tenant": e.tenant_id, "project": e.project_id, "key": e.key_id}
    if key in ident:
        return [str(ident[key]) if ident[key] else None]
    if key == "day":
        return [e.started_at.astimezone(UTC).date().isoformat()]
    if key == "tag":
        return list(e.tags) or [None]
    return [{"model": e.served_model, "front_end": e.front_end, "user": e.end_user}[key]]


def selected(events: list[UsageEvent], f: dict[str, Any]) -> list[UsageEvent]:
    def keep(e: UsageEvent) -> bool:
        return all([
            "tenant" not in f or e.tenant_id == f["tenant"], "project" not in f or e.project_id == f["project"],
            "key" not in f or e.key_id == f["key"], "model" not in f or e.served_model == f["model"],
            "front_end" not in f or e.front_end == f["front_end"], "tag" not in f or f["tag"] in e.tags,
            "user" not in f or e.end_user == f["user"]])
    return [e for e in events if keep(e)]


def _zero() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTS, 0), **{m: Decimal(0) for m in MONEY}}


def _add(sums: dict[str, Any], e: UsageEvent) -> None:
    sums["requests"] += e.status == "ok"
    sums["attempts"] += 1
    for f in (*COUNTS[2:], *MONEY):
        sums[f] += getattr(e, f)


def expected(events: list[UsageEvent], keys: list[str], f: dict[str, Any]) -> tuple[dict[tuple, dict], dict]:
    groups: dict[tuple, dict] = defaultdict(_zero)
    total = _zero()
    for e in selected(events, f):
        _add(total, e)
        # A tag filter narrows the tag groups to that tag.
        values = [[f["tag"]] if k == "tag" and "tag" in f else _values(e, k) for k in keys]
        for combo in itertools.product(*values):
            _add(groups[combo], e)
    return dict(groups), total


_FIELD = {"tenant": "tenant_id", "project": "project_id", "key": "key_id", "user": "user"}


def got(data: list[dict], keys: list[str], money: tuple[str, ...] = MONEY) -> dict[tuple, dict]:
    out = {}
    for row in data:
        combo = tuple(row[_FIELD.get(k, k)] for k in keys)
        assert combo not in out, f"group {combo} listed twice"
        sums = {c: int(row[c]) for c in COUNTS}
        sums.update({m: Decimal(row[m]) for m in money})
        out[combo] = sums
    return out


def tenant_view(sums: dict[tuple, dict]) -> dict[tuple, dict]:
    return {k: {**{c: v[c] for c in COUNTS}, "cost_usd": v["billed_usd"]} for k, v in sums.items()}


async def build_attributed(database_url: str) -> Attributed:
    """Two tenants with projects and keys, and their rows written three times over (retries, a replay)."""
    conn = await asyncpg.connect(database_url)
    try:
        orgs = []
        for stem in ("zed", "abe"):
            tenant = await tenants.create_tenant(conn, f"{stem}-{uuid.uuid4().hex[:6]}")
            made = [await projects.create_project(conn, tenant.id, name) for name in ("web", "batch")]
            plain, _ = await tenants.create_key(conn, tenant.id)
            keys = [(await tenants.create_key(conn, tenant.id, name=f"k{i}", project_id=p))[1]
                    for i, p in enumerate((made[0].id, made[1].id, None))]
            orgs.append(Org(tenant, plain, made, keys))
        events = _events(orgs, random.Random(20240415))
        await write_batch(conn, events[:100])
        await write_batch(conn, events[60:])  # overlaps: a retried batch
        await write_batch(conn, [replace(e) for e in events])  # a whole replay
        return Attributed(orgs, events)
    finally:
        await conn.close()
