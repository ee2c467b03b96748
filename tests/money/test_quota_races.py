"""Interleavings of the quota leaser against a real Postgres, forced at the await points that matter:
a reservation while a flush hands a slice back, and reservations while a lease is being granted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from service.metering.quota import QuotaLeaser

LIMIT = Decimal("1.0")


class GatedPool:
    """A pool whose statements matching `gate_on` wait for `gate` before they run."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.gate_on: str | None = None
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def _maybe_wait(self, query: str) -> None:
        if self.gate_on is not None and self.gate_on in query:
            self.waiting.set()
            await self.gate.wait()

    async def fetchval(self, query: str, *args: Any) -> Any:
        await self._maybe_wait(query)
        return await self.pool.fetchval(query, *args)

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[Any]:
        outer = self

        class Conn:
            async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
                await outer._maybe_wait(query)
                return await outer.pool.fetchrow(query, *args)

        yield Conn()


async def _db_state(pool: asyncpg.Pool, scope: str, period: datetime) -> tuple[Decimal, Decimal]:
    used = await pool.fetchval(
        "SELECT COALESCE(sum(used), 0) FROM quota_counters WHERE scope = $1 AND period_start = $2", scope, period)
    leased = await pool.fetchval(
        "SELECT COALESCE(sum(granted), 0) FROM quota_leases WHERE scope = $1 AND period_start = $2", scope, period)
    return used, leased


async def test_a_reservation_during_a_flush_never_spends_what_is_being_handed_back(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    gated = GatedPool(pool)
    scope, period = f"budget:race-flush-{id(pool)}", datetime.now(UTC).replace(microsecond=0)
    mine = QuotaLeaser(lambda: gated, idle_seconds=0.0)
    other = QuotaLeaser(lambda: pool)
    try:
        assert await mine.reserve(scope, period, LIMIT, Decimal("0.1"), Decimal("0.5"))
        mine.settle(scope, period, Decimal("0.1"), Decimal("0.1"))  # idle: 0.1 spent, 0.4 to hand back
        gated.gate_on = "switchyard_quota_settle"
        flush = asyncio.create_task(mine.flush())
        await gated.waiting.wait()  # the flush is awaiting its settle
        # A request arrives now; it must not spend the 0.4 the flush is about to give back.
        gated.gate_on = None
        took = await mine.reserve(scope, period, LIMIT, Decimal("0.3"), Decimal("0.3"))
        gated.gate.set()
        await flush
        assert took
        # Another process leases everything the database says is left...
        while await other.reserve(scope, period, LIMIT, Decimal("0.05"), Decimal("0.05")):
            pass
        # ...and both spend all they hold: the limit is never passed.
        mine.settle(scope, period, Decimal("0.3"), Decimal("0.3"))
        s = other._slices[(scope, period)]
        other.settle(scope, period, s.reserved, s.reserved)
        await mine.flush(release_all=True)
        await other.flush(release_all=True)
        used, leased = await _db_state(pool, scope, period)
        assert leased == 0 and used <= LIMIT, used
    finally:
        await pool.close()


async def test_reservations_during_a_lease_are_counted_before_the_lease_is_used(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    gated = GatedPool(pool)
    scope, period = f"budget:race-lease-{id(pool)}", datetime.now(UTC).replace(microsecond=0)
    leaser = QuotaLeaser(lambda: gated)
    try:
        assert await leaser.reserve(scope, period, LIMIT, Decimal("0.2"), Decimal("0.2"))
        leaser.settle(scope, period, Decimal("0.2"), Decimal(0))  # 0.2 of slice free again
        gated.gate_on = "switchyard_quota_lease"
        big = asyncio.create_task(leaser.reserve(scope, period, LIMIT, Decimal("0.3"), Decimal("0.1")))
        await gated.waiting.wait()  # asking Postgres for the 0.1 it lacks
        gated.gate_on = None
        # Meanwhile a small request takes the free 0.2 from the slice without asking anyone.
        assert await leaser.reserve(scope, period, LIMIT, Decimal("0.2"), Decimal("0.1"))
        gated.gate.set()
        assert await big
        s = leaser._slices[(scope, period)]
        # Everything reserved in memory is covered by what Postgres leased to this process.
        _, leased = await _db_state(pool, scope, period)
        assert s.reserved + s.pending <= s.granted == leased
    finally:
        await pool.close()
