"""A month of usage for the console benchmark: a million ledger rows by bulk COPY, then the rollups
rebuilt from the ledger with the ledger writer's own sums, and checked equal to it.

Tenants are skewed (the biggest holds about a third of the rows) with projects, keys, end users and
tags of their own; models and front ends from a fixed list; a share of requests retried once. A few
budgets per tenant get spend settled through switchyard_quota_settle, which raises their alerts.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from service.auth import projects, tenants
from service.metering import budget_records
from service.metering.admission import period_start
from service.metering.events import USAGE_COLUMNS

MODELS = (("moonshotai/Kimi-K2.5", 60, 300), ("openai/gpt-oss-120b", 10, 50), ("zai-org/GLM-4.6", 60, 220),
          ("deepseek-ai/DeepSeek-V3.1", 50, 150), ("Qwen/Qwen3-Coder-480B-A35B-Instruct", 38, 153),
          ("moonshotai/Kimi-K2-Instruct-0905", 60, 250))  # (slug, cents per 10M prompt / completion tokens)
FRONT_ENDS = ("baseten", "xpay", "orthogonal")
Q = Decimal("1E-10")
NIL = "'00000000-0000-0000-0000-000000000000'::uuid"
CHUNK = 50_000


@dataclass
class BenchTenant:
    id: uuid.UUID
    name: str
    markup: Decimal
    keys: list[tuple[uuid.UUID, uuid.UUID | None]]  # (key id, its project)
    users: list[str]
    tags: list[str]
    weight: float


def month_days(month: date) -> list[date]:
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [month + timedelta(days=n) for n in range((following - month).days)]


async def make_tenants(conn: asyncpg.Connection, count: int, rng: random.Random) -> list[BenchTenant]:
    out = []
    for n in range(count):
        record = await tenants.create_tenant(conn, f"bench-{n:02d}", markup=Decimal(rng.choice(("0", "0.1", "0.2"))))
        made = [(await projects.create_project(conn, record.id, f"project-{p}")).id for p in range(3)]
        keys = []
        for k in range(5):
            _, key = await tenants.create_key(conn, record.id, name=f"key-{k}", project_id=made[k % 3] if k < 4 else None)
            keys.append((key.id, key.project_id))
        out.append(BenchTenant(record.id, record.name, record.markup, keys,
                               [f"user-{n:02d}-{u:03d}" for u in range(200)], [f"tag-{n:02d}-{t}" for t in range(6)],
                               weight=1.0 / (n + 1)))
    return out


def _rows(tenants_: list[BenchTenant], days: list[date], rows: int, rng: random.Random):
    """Ledger records in USAGE_COLUMNS order, `rows` of them, in chunks."""
    weights = [t.weight for t in tenants_]
    run = f"{rng.getrandbits(48):012x}"
    chunk: list[tuple] = []
    made = n = 0
    span = len(days) * 86400
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    while made < rows:
        t = rng.choices(tenants_, weights)[0]
        key_id, project_id = rng.choice(t.keys)
        slug, cin, cout = rng.choice(MODELS)
        front_end = rng.choice(FRONT_ENDS)
        prompt, completion = rng.randrange(50, 40_000), rng.randrange(1, 2_000)
        direct = (Decimal(prompt * cin + completion * cout) / 10_000_000_000).quantize(Q)
        cost = Decimal("0.01") if front_end == "xpay" else direct
        markup = 1 + t.markup
        started = start + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000))
        user = rng.choice(t.users) if rng.random() < 0.8 else None
        tags = rng.sample(t.tags, rng.choice((0, 1, 1, 2)))
        attempts = 2 if rng.random() < 0.05 and rows - made >= 2 else 1
        for attempt in range(1, attempts + 1):
            ok = attempt == attempts
            chunk.append((
                f"req_{run}_{n:08d}", attempt, t.id, key_id, slug, slug, front_end, f"{front_end}:{slug}",
                "ok" if ok else "error", None if ok else "upstream_error", 200 if ok else 502, n % 3 != 0, False,
                prompt, prompt // 5, completion if ok else 0, (completion // 4) if ok else 0, cost,
                (cost * markup).quantize(Q), "bench", "computed", False, None, started + timedelta(milliseconds=attempt),
                started + timedelta(milliseconds=400), started + timedelta(seconds=3), (direct * markup).quantize(Q),
                "chat", project_id, user, tags, None))
            made += 1
        n += 1
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_SUMS = """count(*) FILTER (WHERE status = 'ok'), count(*), sum(prompt_tokens), sum(cached_tokens),
           sum(completion_tokens), sum(reasoning_tokens), sum(provider_cost_usd), sum(billed_usd),
           sum(COALESCE(direct_billed_usd, billed_usd))"""
_MEASURES = """requests, attempts, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
           provider_cost_usd, billed_usd, direct_billed_usd"""
# The ledger writer's rollups (service.metering.ledger), rebuilt in one pass over the month.
ROLLUPS = [
    f"""INSERT INTO usage_daily (day, tenant_id, project_id, key_id, served_model, front_end, {_MEASURES})
        SELECT (started_at AT TIME ZONE 'UTC')::date, tenant_id, COALESCE(project_id, {NIL}), COALESCE(key_id, {NIL}),
               served_model, front_end, {_SUMS}
        FROM usage_events WHERE started_at >= $1 AND started_at < $2 GROUP BY 1, 2, 3, 4, 5, 6""",
    f"""INSERT INTO usage_daily_tags (day, tenant_id, tag, project_id, key_id, served_model, front_end, {_MEASURES})
        SELECT (started_at AT TIME ZONE 'UTC')::date, tenant_id, tg.tag, COALESCE(project_id, {NIL}),
               COALESCE(key_id, {NIL}), served_model, front_end, {_SUMS}
        FROM usage_events
        CROSS JOIN LATERAL (SELECT DISTINCT t FROM unnest(CASE WHEN cardinality(tags) = 0 THEN ARRAY['']
                                                         ELSE tags END) AS t) AS tg(tag)
        WHERE started_at >= $1 AND started_at < $2 GROUP BY 1, 2, 3, 4, 5, 6, 7""",
]
_CHECK = """
SELECT (SELECT row(count(*) FILTER (WHERE status = 'ok'), count(*), sum(billed_usd),
                   sum(COALESCE(direct_billed_usd, billed_usd)))::text
        FROM usage_events WHERE started_at >= $1 AND started_at < $2) AS ledger,
       (SELECT row(sum(requests), sum(attempts), sum(billed_usd), sum(direct_billed_usd))::text
        FROM usage_daily WHERE day >= $3 AND day <= $4) AS daily
"""


async def seed_month(conn: asyncpg.Connection, month: date, rows: int, tenant_count: int,
                     seed: int = 20261201) -> dict[str, float | int]:
    """Tenants, a month of `rows` ledger rows, consistent rollups, budgets with alerts. Returns timings."""
    rng = random.Random(seed)
    days = month_days(month)
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=len(days))
    # The month's own partition, as the service makes them (a past month would land in the default).
    # (DDL takes no parameters; both bounds are dates this function made.)
    await conn.execute(f"CREATE TABLE IF NOT EXISTS usage_events_{month:%Y_%m} PARTITION OF usage_events"
                       f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    bench_tenants = await make_tenants(conn, tenant_count, rng)
    began = time.perf_counter()
    for chunk in _rows(bench_tenants, days, rows, rng):
        await conn.copy_records_to_table("usage_events", records=chunk, columns=USAGE_COLUMNS)
    copied = time.perf_counter()
    for sql in ROLLUPS:
        await conn.execute(sql, start, end)
    rolled = time.perf_counter()
    await conn.execute("ANALYZE")
    check = await conn.fetchrow(_CHECK, start, end, days[0], days[-1])
    if check["ledger"] != check["daily"]:
        raise AssertionError(f"rollup differs from the ledger: {check['ledger']} != {check['daily']}")
    now = datetime.now(UTC)
    for t in bench_tenants:
        for period, limit in (("month", Decimal(400)), ("day", Decimal(20))):
            record, _ = await budget_records.upsert_budget(conn, t.id, period=period, limit_usd=limit)
            spent = (limit * Decimal(rng.randrange(10, 110)) / 100).quantize(Decimal("0.01"))
            await conn.execute("SELECT switchyard_quota_settle($1, $2, 'bench', $3, 0, 60)", f"budget:{record.id}",
                               period_start(period, now), spent)
    return {"rows": rows, "tenants": tenant_count, "copy_seconds": round(copied - began, 1),
            "rollup_seconds": round(rolled - copied, 1),
            "usage_daily_rows": await conn.fetchval("SELECT count(*) FROM usage_daily"),
            "usage_daily_tags_rows": await conn.fetchval("SELECT count(*) FROM usage_daily_tags")}
