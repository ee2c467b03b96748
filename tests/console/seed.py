"""A small month of usage for the console tests: two tenants whose every name, tag and end user is
distinct (so a leak from one to the other shows as text on the page), written through the real
ledger writer (so the rollups are what the gateway itself keeps), and budgets whose spend is
settled through the real quota function (so their alerts are the ones spend raises).

The month is March 2025, which no other test writes to. `expected_*` recompute what the console
should show from the rows themselves, independently of the SQL.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from service.alerts import webhooks
from service.auth import projects, tenants
from service.metering import budget_records
from service.metering.admission import period_start
from service.metering.events import UsageEvent
from service.metering.ledger import write_batch

FIRST, LAST = date(2025, 3, 1), date(2025, 3, 31)
MODELS = ("openai/gpt-oss-120b", "moonshotai/Kimi-K2.5", "zai-org/GLM-4.6")
FRONT_ENDS = ("baseten", "xpay", "orthogonal")
Q = Decimal("1E-10")


@dataclass
class SeedKey:
    id: uuid.UUID
    key: str
    prefix: str
    name: str
    project_id: uuid.UUID | None


@dataclass
class SeedTenant:
    id: uuid.UUID
    name: str
    markup: Decimal
    keys: list[SeedKey]
    projects: dict[str, uuid.UUID]
    tags: tuple[str, ...]
    users: tuple[str, ...]
    events: list[UsageEvent] = field(default_factory=list)
    budgets: dict[str, uuid.UUID] = field(default_factory=dict)

    def in_range(self) -> list[UsageEvent]:
        start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC)
        end = datetime(LAST.year, LAST.month, LAST.day, tzinfo=UTC) + timedelta(days=1)
        return [e for e in self.events if start <= e.started_at < end]

    def strings(self) -> set[str]:
        """Text only this tenant's data holds: none of it may appear in another tenant's console."""
        return {self.name, *self.tags, *self.users, *self.projects, *(k.prefix for k in self.keys),
                *(k.name for k in self.keys), *(e.request_id for e in self.events)}


@dataclass
class Seed:
    a: SeedTenant
    b: SeedTenant


def _events(t: SeedTenant, rng: random.Random, count: int) -> list[UsageEvent]:
    run = uuid.uuid4().hex[:6]
    events: list[UsageEvent] = []
    for n in range(count):
        key = t.keys[n % len(t.keys)]
        # The range's edges: its first instant, its last, and one row on each side of it.
        if n == 0:
            started = datetime(2025, 3, 1, tzinfo=UTC)
        elif n == 1:
            started = datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
        elif n == 2:
            started = datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC)
        elif n == 3:
            started = datetime(2025, 4, 1, tzinfo=UTC)
        else:
            started = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(31 * 86400))
        front_end = rng.choice(FRONT_ENDS)
        model = rng.choice(MODELS)
        ok = rng.random() < 0.85
        prompt = rng.randrange(10, 60_000)
        completion = rng.randrange(1, 3_000) if ok else 0
        direct_cost = ((Decimal(prompt) * Decimal("0.60") + Decimal(completion) * Decimal("3.00"))
                       / 1_000_000).quantize(Q)
        cost = Decimal("0.01") if front_end == "xpay" else direct_cost
        markup = 1 + t.markup
        tags = tuple(rng.sample(t.tags, rng.randrange(0, len(t.tags) + 1)))
        user = rng.choice((*t.users, None))
        for attempt in range(1, rng.choice((1, 1, 1, 2)) + 1):
            last = attempt > 1 or ok
            events.append(UsageEvent(
                request_id=f"req_{t.name[:5]}_{run}_{n:04d}", attempt=attempt, tenant_id=t.id, key_id=key.id,
                requested_model="auto" if n % 4 == 0 else model, served_model=model, front_end=front_end,
                route=f"{front_end}:{model}", status="ok" if last else "error",
                error_code=None if last else "upstream_error", http_status=200 if last else 502,
                stream=bool(n % 3), client_disconnected=False, prompt_tokens=prompt,
                cached_tokens=prompt // 5, completion_tokens=completion if last else 0,
                reasoning_tokens=(completion // 4) if last else 0, provider_cost_usd=cost,
                billed_usd=(cost * markup).quantize(Q), price_version="2025-03-01", cost_source="computed",
                estimated=False, upstream_request_id=None, started_at=started + timedelta(milliseconds=attempt),
                first_token_at=started + timedelta(milliseconds=300), ended_at=started + timedelta(seconds=2),
                # A model without a direct price: counted at what it was billed (see the ledger writer).
                direct_billed_usd=None if model == "zai-org/GLM-4.6" else (direct_cost * markup).quantize(Q),
                api="chat", project_id=key.project_id, end_user=user, tags=tags,
            ))
    return events


async def _tenant(conn: asyncpg.Connection, name: str, markup: str, project_names: list[str],
                  key_specs: list[tuple[str, str | None]], tags: tuple[str, ...], users: tuple[str, ...]) -> SeedTenant:
    record = await tenants.create_tenant(conn, name, markup=Decimal(markup))
    made = {p: (await projects.create_project(conn, record.id, p)).id for p in project_names}
    keys = []
    for key_name, project in key_specs:
        secret, key = await tenants.create_key(conn, record.id, name=key_name,
                                               project_id=made[project] if project else None)
        keys.append(SeedKey(key.id, secret, key.prefix, key_name, key.project_id))
    return SeedTenant(record.id, name, Decimal(markup), keys, made, tags, users)


async def _budget(conn: asyncpg.Connection, t: SeedTenant, label: str, *, period: str, limit: str, spent: str,
                  hard: bool = True, project: str | None = None, key: SeedKey | None = None,
                  window_hours: int | None = None, thresholds: list[int] | None = None) -> None:
    record, _ = await budget_records.upsert_budget(
        conn, t.id, period=period, limit_usd=Decimal(limit), hard=hard, window_hours=window_hours,
        project_id=t.projects[project] if project else None, key_id=key.id if key else None)
    t.budgets[label] = record.id
    if thresholds is not None:
        await webhooks.set_thresholds(conn, record.id, [Decimal(p) for p in thresholds])
    # Spend arrives as enforcement settles it: the same call raises the threshold alerts.
    bucket = period_start("hour" if period == "rolling" else period, datetime.now(UTC))
    await conn.execute("SELECT switchyard_quota_settle($1, $2, 'console-seed', $3, 0, 60)",
                       f"budget:{record.id}", bucket, Decimal(spent))


async def seed(database_url: str) -> Seed:
    suffix = uuid.uuid4().hex[:6]
    conn = await asyncpg.connect(database_url)
    try:
        a = await _tenant(conn, f"acme-{suffix}", "0.2", ["search-proj", "chat-proj"],
                          [("search-prod", "search-proj"), ("chat-prod", "chat-proj"), ("ops-key", None)],
                          ("alpha-tag", "beta-tag"), ("alice@acme", "bob@acme", "carol@acme"))
        b = await _tenant(conn, f"globex-{suffix}", "0", ["hidden-proj"], [("globex-main", "hidden-proj")],
                          ("globex-secret-tag",), ("zed@globex",))
        rng = random.Random(20250301)
        a.events, b.events = _events(a, rng, 240), _events(b, rng, 90)
        await write_batch(conn, a.events + b.events)
        await write_batch(conn, a.events[:50])  # a replayed batch counts once
        await _budget(conn, a, "tenant-month", period="month", limit="50", spent="30")
        await _budget(conn, a, "project-day", period="day", limit="5", spent="4.5", project="search-proj",
                      thresholds=[25, 75])
        await _budget(conn, a, "key-rolling", period="rolling", window_hours=24, limit="2", spent="0.25",
                      hard=False, key=a.keys[2])
        await _budget(conn, b, "tenant-month", period="month", limit="10", spent="9.5")
    finally:
        await conn.close()
    return Seed(a, b)


# ---- what the console should show, recomputed from the rows ---------------------------------------

def direct(e: UsageEvent) -> Decimal:
    return e.direct_billed_usd if e.direct_billed_usd is not None else e.billed_usd


def expected_spend(events: list[UsageEvent], group: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for e in events:
        if group == "tag":
            for tag in (e.tags or ("",)):
                out[tag] += e.billed_usd
        else:
            out[{"model": e.served_model, "front_end": e.front_end}[group]] += e.billed_usd
    return dict(out)


def expected_savings(events: list[UsageEvent]) -> tuple[Decimal, Decimal]:
    return sum((e.billed_usd for e in events), Decimal(0)), sum((direct(e) for e in events), Decimal(0))


def usd(value: str) -> str:
    """The page's rendering of an exact amount: trailing zeros trimmed to two places, thousands grouped."""
    negative = value.startswith("-")
    whole, _, fraction = value.lstrip("-").partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return ("-$" if negative else "$") + f"{int(whole):,}" + "." + fraction
