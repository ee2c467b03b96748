"""Budget alerts against real Postgres: raised by switchyard_quota_settle and switchyard_quota_lease
in the same transaction as the spend (or refusal) that caused them, once each."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.alerts import webhooks
from service.alerts.rules import DEFAULT_THRESHOLDS
from tests.alerts.conftest import PERIOD, make_budget, settle


async def events_of(conn: asyncpg.Connection, tenant_id: uuid.UUID, kind: str = "budget.threshold") -> list[dict]:
    rows = await conn.fetch("SELECT data::text AS data FROM alert_events WHERE tenant_id = $1 AND kind = $2 "
                            "ORDER BY (data->>'threshold_percent')::numeric NULLS LAST, created_at", tenant_id, kind)
    return [orjson.loads(r["data"]) for r in rows]


async def test_default_thresholds_fire_once_each_with_the_spend_that_crossed_them(pool, alerts_db):
    async with pool.acquire() as conn:
        b = await make_budget(conn, alerts_db, "10", webhook_url="https://alerts.example.com/hook")
        await settle(conn, b.scope, "4")
        assert await events_of(conn, b.tenant_id) == []
        await settle(conn, b.scope, "1")  # exactly 50 %
        await settle(conn, b.scope, "3.5")  # 85 %: past 80
        await settle(conn, b.scope, "0.25")  # nothing new
        await settle(conn, b.scope, "2")  # 107.5 %
        await settle(conn, b.scope, "2")  # still past everything: nothing new
        events = await events_of(conn, b.tenant_id)
        deliveries = await conn.fetch(
            "SELECT d.target, d.status, d.attempts FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id "
            "WHERE e.tenant_id = $1", b.tenant_id)
    assert [Decimal(e["threshold_percent"]) for e in events] == list(DEFAULT_THRESHOLDS)
    assert [e["spent_usd"] for e in events] == ["5", "8.5", "10.75"]
    assert all(e["limit_usd"] == "10" and e["budget_id"] == str(b.budget_id) and e["hard"] is True
               and e["period_start"] == "2026-11-01T00:00:00Z" for e in events)
    # One delivery per event to the tenant's webhook, waiting for a worker.
    assert [(d["target"], d["status"], d["attempts"]) for d in deliveries] == [("tenant", "pending", 0)] * 3


async def test_an_event_exists_only_if_its_spend_committed(pool, alerts_db):
    async with pool.acquire() as conn:
        b = await make_budget(conn, alerts_db, "1")

        async def spend_then_fail() -> None:
            async with conn.transaction():
                await settle(conn, b.scope, "0.9")
                raise RuntimeError("the spend's transaction fails")

        with pytest.raises(RuntimeError, match="the spend's transaction fails"):
            await spend_then_fail()
        assert await events_of(conn, b.tenant_id) == []
        assert await conn.fetchval("SELECT used FROM quota_counters WHERE scope = $1", b.scope) is None
        await settle(conn, b.scope, "0.9")
        assert [e["threshold_percent"] for e in await events_of(conn, b.tenant_id)] == [50, 80]


async def test_a_budgets_own_thresholds_and_none(pool, alerts_db):
    async with pool.acquire() as conn:
        own = await make_budget(conn, alerts_db, "200")
        silent = await make_budget(conn, alerts_db, "200")
        assert (await webhooks.set_thresholds(conn, own.budget_id, [Decimal(90), Decimal("25.5"), Decimal(90)])
                ).percents == (Decimal("25.5"), Decimal(90))
        assert (await webhooks.set_thresholds(conn, silent.budget_id, [])).percents == ()
        for b in (own, silent):
            await settle(conn, b.scope, "190")
        assert [e["threshold_percent"] for e in await events_of(conn, own.tenant_id)] == [25.5, 90]
        assert await events_of(conn, silent.tenant_id) == []
        back = await webhooks.set_thresholds(conn, silent.budget_id, None)
        assert back.default and back.percents == DEFAULT_THRESHOLDS
        await settle(conn, silent.scope, "1")
        assert [e["threshold_percent"] for e in await events_of(conn, silent.tenant_id)] == [50, 80]
        assert await webhooks.set_thresholds(conn, uuid.uuid4(), [Decimal(1)]) is None


async def test_a_changed_limit_is_judged_anew(pool, alerts_db):
    async with pool.acquire() as conn:
        b = await make_budget(conn, alerts_db, "10")
        await settle(conn, b.scope, "6")
        await conn.execute("UPDATE budgets SET limit_usd = 100 WHERE id = $1", b.budget_id)
        await settle(conn, b.scope, "1")  # 7 of 100: below every threshold of the new limit
        await settle(conn, b.scope, "44")  # 51 of 100
        events = await events_of(conn, b.tenant_id)
    assert [(e["limit_usd"], e["threshold_percent"], e["spent_usd"]) for e in events] == [
        ("10", 50, "6"), ("100", 50, "51")]


async def test_other_scopes_raise_nothing(pool, alerts_db):
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM alert_events")
        for scope in ("rpm:abc", "tpm:abc", "budget:race-42", f"budget:{uuid.uuid4()}"):
            assert await settle(conn, scope, "5") == 5
            row = await conn.fetchrow("SELECT * FROM switchyard_quota_lease($1, $2, 'h', 1, 2, 2, 30)", scope, PERIOD)
            assert row["granted"] == 0
        assert await conn.fetchval("SELECT count(*) FROM alert_events") == before


async def test_concurrent_settles_raise_each_threshold_once(alerts_db, pool):
    async with pool.acquire() as conn:
        b = await make_budget(conn, alerts_db, "10")
    pools = [await asyncpg.create_pool(alerts_db, min_size=1, max_size=5) for _ in range(2)]
    try:
        await asyncio.gather(*(settle_on(pools[i % 2], b.scope, "0.25") for i in range(60)))
    finally:
        for p in pools:
            await p.close()
    async with pool.acquire() as conn:
        events = await events_of(conn, b.tenant_id)
    assert [e["threshold_percent"] for e in events] == [50, 80, 100]
    # Each was raised by the settle that reached it: the counter moves in steps of 0.25.
    assert [Decimal(e["spent_usd"]) for e in events] == [Decimal(5), Decimal(8), Decimal(10)]


async def settle_on(p: asyncpg.Pool, scope: str, used: str) -> None:
    async with p.acquire() as conn:
        await settle(conn, scope, used)


async def test_a_refused_lease_says_the_budget_is_reached_once_a_period(pool, alerts_db):
    async with pool.acquire() as conn:
        b = await make_budget(conn, alerts_db, "1", hard=True)
        lease = "SELECT * FROM switchyard_quota_lease($1, $2, $3, 1, $4, $4, 30)"
        assert (await conn.fetchrow(lease, b.scope, PERIOD, "p1", Decimal("0.7")))["granted"] == Decimal("0.7")
        await conn.fetchval("SELECT switchyard_quota_settle($1, $2, 'p1', 0.6, 0.1, 30)", b.scope, PERIOD)
        for _ in range(3):
            assert (await conn.fetchrow(lease, b.scope, PERIOD, "p2", Decimal("0.5")))["granted"] == 0
        reached = await events_of(conn, b.tenant_id, "budget.limit_reached")
        assert reached == [{"budget_id": str(b.budget_id), "period_start": "2026-11-01T00:00:00Z", "limit_usd": "1",
                            "spent_usd": "0.6", "leased_usd": "0", "request_bound_usd": "0.5", "hard": True}]
        # The next period is a new one.
        next_period = PERIOD.replace(month=12)
        await conn.fetchval("SELECT switchyard_quota_settle($1, $2, 'p1', 0.9, 0, 30)", b.scope, next_period)
        assert (await conn.fetchrow(lease, b.scope, next_period, "p2", Decimal("0.5")))["granted"] == 0
        assert len(await events_of(conn, b.tenant_id, "budget.limit_reached")) == 2


async def test_a_dead_holders_lease_counted_as_spend_crosses_thresholds(pool, alerts_db):
    async with pool.acquire() as conn:
        b = await make_budget(conn, alerts_db, "10")
        await conn.fetch("SELECT * FROM switchyard_quota_lease($1, $2, 'dead', 10, 6, 6, 0)", b.scope, PERIOD)
        await asyncio.sleep(0.05)
        await conn.fetch("SELECT * FROM switchyard_quota_lease($1, $2, 'alive', 10, 1, 1, 30)", b.scope, PERIOD)
        assert [e["threshold_percent"] for e in await events_of(conn, b.tenant_id)] == [50]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
    spends=st.lists(st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal(600), places=10),
                    min_size=1, max_size=12),
    percents=st.lists(st.decimals(min_value=Decimal(0), max_value=Decimal(150), places=2), max_size=5),
)
def test_every_threshold_reached_is_raised_once_at_the_first_spend_past_it(alerts_db, limit, spends, percents):
    asyncio.run(_property(alerts_db, limit, spends, percents))


async def _property(alerts_db: str, limit: Decimal, spends: list[Decimal], percents: list[Decimal]) -> None:
    conn = await asyncpg.connect(alerts_db)
    try:
        b = await make_budget(conn, alerts_db, str(limit))
        await webhooks.set_thresholds(conn, b.budget_id, percents)
        totals = [await settle(conn, b.scope, str(spend)) for spend in spends]  # in order, one at a time
        events = await events_of(conn, b.tenant_id)
    finally:
        await conn.close()
    expected = []
    for p in sorted(set(percents)):
        first = next((t for t in totals if t >= limit * p / 100), None)
        if first is not None:
            expected.append((p, first))
    assert [(Decimal(str(e["threshold_percent"])), Decimal(e["spent_usd"])) for e in events] == expected
