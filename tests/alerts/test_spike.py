"""The spend-spike rule, judged in the ledger's own insert statement (service.metering.ledger)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import orjson

from service.alerts.rules import SpikeRule
from service.metering.events import UsageEvent
from service.metering.ledger import prepare_connection, write_batch

HOUR = datetime(2026, 11, 20, 14, tzinfo=UTC)
RULE = SpikeRule(factor=Decimal(4), min_usd=Decimal(1), min_hours=3, window_hours=24)


def usage(tenant_id: uuid.UUID, billed: str, at: datetime) -> UsageEvent:
    return UsageEvent(
        request_id=f"req_{uuid.uuid4().hex}", attempt=1, tenant_id=tenant_id, key_id=None,
        requested_model="auto", served_model="openai/gpt-oss-120b", front_end="baseten", route="baseten:x",
        status="ok", error_code=None, http_status=200, stream=False, client_disconnected=False,
        prompt_tokens=10, cached_tokens=0, completion_tokens=10, reasoning_tokens=0,
        provider_cost_usd=Decimal(billed), billed_usd=Decimal(billed), price_version="v", cost_source="computed",
        estimated=False, upstream_request_id=None, started_at=at, first_token_at=None,
        ended_at=at + timedelta(seconds=1))


async def history(conn: asyncpg.Connection, tenant_id: uuid.UUID, amounts: list[str]) -> None:
    """Hourly spend in the hours before HOUR, newest last (written through the ledger itself)."""
    for i, amount in enumerate(amounts):
        await write_batch(conn, [usage(tenant_id, amount, HOUR - timedelta(hours=len(amounts) - i, minutes=-5))], RULE)


async def spikes(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[dict]:
    rows = await conn.fetch("SELECT data::text AS data FROM alert_events WHERE tenant_id = $1 AND kind = 'spend.spike' "
                            "ORDER BY created_at", tenant_id)
    return [orjson.loads(r["data"]) for r in rows]


async def test_an_hour_past_four_times_its_norm_raises_one_spike(pool):
    tenant = uuid.uuid4()
    async with pool.acquire() as conn:
        await prepare_connection(conn)
        # Median of the hours with spend is 0.50 (a quiet hour with none does not lower it).
        await history(conn, tenant, ["0.40", "0", "0.50", "0.60", "0.70"])
        first = [usage(tenant, "0.50", HOUR + timedelta(minutes=m)) for m in range(0, 15, 5)]
        assert await write_batch(conn, first, RULE) == 3
        assert await spikes(conn, tenant) == []  # 1.50 < 4 x 0.50
        assert await write_batch(conn, [usage(tenant, "0.49", HOUR + timedelta(minutes=20))], RULE) == 1
        assert await spikes(conn, tenant) == []  # 1.99
        await write_batch(conn, [usage(tenant, "0.01", HOUR + timedelta(minutes=30))], RULE)
        assert await spikes(conn, tenant) == [{
            "hour_start": "2026-11-20T14:00:00Z", "billed_usd": "2", "norm_usd": "0.5", "factor": "4",
            "window_hours": 24, "hours_in_norm": 4}]
        # The hour's norm was fixed at its first judgment: history written late does not move it.
        assert await conn.fetchrow("SELECT norm_usd, hours FROM tenant_spend_norms WHERE tenant_id = $1 AND hour = $2",
                                   tenant, HOUR) == (Decimal("0.5"), 4)
        # Later rows of the same hour, and a replay of rows already stored, raise nothing more.
        await write_batch(conn, [usage(tenant, "9", HOUR + timedelta(minutes=40)), *first], RULE)
        assert len(await spikes(conn, tenant)) == 1
        hourly = await conn.fetchval("SELECT billed_usd FROM tenant_spend_hourly WHERE tenant_id = $1 AND hour = $2",
                                     tenant, HOUR)
        assert hourly == Decimal(11)


async def test_no_spike_without_enough_history_or_below_the_floor(pool):
    young, small = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        await prepare_connection(conn)
        await history(conn, young, ["0.10", "0.10"])  # two hours with spend; the rule wants three
        await write_batch(conn, [usage(young, "50", HOUR)], RULE)
        await history(conn, small, ["0.01", "0.01", "0.01"])
        await write_batch(conn, [usage(small, "0.99", HOUR)], RULE)  # 99x its norm, below the 1.00 floor
        assert await spikes(conn, young) == [] and await spikes(conn, small) == []
        off = SpikeRule(factor=Decimal(0))
        await write_batch(conn, [usage(small, "100", HOUR + timedelta(hours=1))], off)
        assert await spikes(conn, small) == []


async def test_the_spike_is_written_with_the_rows_that_made_it(pool):
    tenant = uuid.uuid4()
    async with pool.acquire() as conn:
        await prepare_connection(conn)
        await history(conn, tenant, ["1", "1", "1"])
        row = usage(tenant, "10", HOUR)
        try:
            async with conn.transaction():
                await write_batch(conn, [row], RULE)
                raise RuntimeError("the batch's transaction fails")
        except RuntimeError:
            pass
        assert await spikes(conn, tenant) == []
        assert await conn.fetchval("SELECT count(*) FROM usage_events WHERE tenant_id = $1 AND started_at = $2",
                                   tenant, HOUR) == 0
        await write_batch(conn, [row], RULE)
        assert [s["billed_usd"] for s in await spikes(conn, tenant)] == ["10"]
