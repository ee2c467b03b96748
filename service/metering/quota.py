"""Process-side half of the shared limits: hold leased slices, reserve and settle in memory.

A request reserves its worst case from the slice this process holds; only when the slice is
short does it ask Postgres for more (switchyard_quota_lease, one atomic call; for a rolling window,
switchyard_quota_lease_window, which checks every window the period's bucket belongs to). Settled
spend is flushed to the counter every `flush_seconds`, which also renews the lease; a slice unused
for `idle_seconds` is given back so other processes may use it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import structlog

from service.db.pool import fetchrow_bounded, returned
from service.tasks import cancel_and_wait

log = structlog.get_logger("switchyard.quota")

ZERO = Decimal(0)
LEASE_TTL_SECONDS = 30
REFUSAL_MEMORY_SECONDS = 1.0


_LEASE = "SELECT granted, remaining FROM switchyard_quota_lease($1, $2, $3, $4, $5, $6, $7)"
_LEASE_WINDOW = "SELECT granted, remaining FROM switchyard_quota_lease_window($1, $2, $3, $4, $5, $6, $7, $8)"


class QuotaUnavailable(Exception):
    """The database could not be asked for more; the caller decides (fail closed for hard limits)."""


@dataclass(slots=True)
class _Slice:
    scope: str
    period: datetime
    granted: Decimal = ZERO  # leased to this process and not yet flushed as used
    reserved: Decimal = ZERO  # held by requests in flight
    pending: Decimal = ZERO  # settled spend not yet flushed to the counter
    remaining_hint: Decimal | None = None  # what Postgres said remained after our last lease
    refused_at: float = -1e9  # when Postgres last refused us a lease
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def available(self) -> Decimal:
        return self.granted - self.reserved - self.pending


class QuotaLeaser:
    def __init__(self, pool_getter: Callable[[], asyncpg.Pool | None], *, flush_seconds: float = 0.5,
                 idle_seconds: float = 2.0) -> None:
        self._pool_getter = pool_getter
        self._flush_seconds = flush_seconds
        self._idle_seconds = idle_seconds
        self._slices: dict[tuple[str, datetime], _Slice] = {}
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.db_calls = 0

    def _slice(self, scope: str, period: datetime) -> _Slice:
        key = (scope, period)
        s = self._slices.get(key)
        if s is None:
            s = self._slices[key] = _Slice(scope, period)
        return s

    async def reserve(self, scope: str, period: datetime, limit: Decimal, need: Decimal,
                      slice_size: Decimal, *, window: timedelta | None = None) -> bool:
        """Hold `need` against the limit; False when it does not fit. Raises QuotaUnavailable.

        With `window`, `period` is one bucket of a rolling window of that length: the limit binds
        every window containing the bucket, not the bucket alone."""
        s = self._slice(scope, period)
        s.last_used = time.monotonic()
        if s.available >= need:
            s.reserved += need
            return True
        if self._known_short(s, need):
            return False
        async with s.lock:
            # Requests that found room in the slice kept reserving while this one waited on
            # Postgres (they never take the lock), so what is available is read again after every
            # grant, and more is asked for until the need fits or Postgres says no.
            while s.available < need:
                if self._known_short(s, need):
                    return False
                pool = self._pool_getter()
                if pool is None:
                    raise QuotaUnavailable(scope)
                shortfall = need - s.available
                args = (scope, period, self.holder, limit, shortfall, max(slice_size, shortfall), LEASE_TTL_SECONDS)
                try:
                    self.db_calls += 1
                    if window is None:
                        row = returned(await fetchrow_bounded(pool, _LEASE, *args))
                    else:
                        row = returned(await fetchrow_bounded(pool, _LEASE_WINDOW, *args, window))
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    raise QuotaUnavailable(scope) from exc
                s.remaining_hint = row["remaining"]
                if row["granted"] <= 0:
                    s.refused_at = time.monotonic()
                    return False
                s.granted += row["granted"]
            s.reserved += need
            return True

    def _known_short(self, s: _Slice, need: Decimal) -> bool:
        """Shortly after a refusal, a need beyond what was left is refused without asking again:
        other holders give slices back only after idling, so the answer cannot have changed."""
        if s.remaining_hint is None or time.monotonic() - s.refused_at > REFUSAL_MEMORY_SECONDS:
            return False
        return need > s.remaining_hint + s.available

    def settle(self, scope: str, period: datetime, reserved: Decimal, actual: Decimal) -> None:
        s = self._slice(scope, period)
        s.reserved = max(ZERO, s.reserved - reserved)
        s.pending += actual
        s.last_used = time.monotonic()

    def remaining_hint(self, scope: str, period: datetime, limit: Decimal) -> Decimal:
        s = self._slices.get((scope, period))
        if s is None or s.remaining_hint is None:
            return limit
        return max(ZERO, s.remaining_hint + s.available)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="quota-flusher")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - the flusher must outlive a bad moment
                log.warning("quota_flush_failed", error=type(exc).__name__)

    async def flush(self, release_all: bool = False) -> None:
        async with self._flush_lock:
            pool = self._pool_getter()
            if pool is None:
                return
            now = time.monotonic()
            for key, s in list(self._slices.items()):
                idle = release_all or (s.reserved == 0 and now - s.last_used >= self._idle_seconds)
                used = s.pending
                release = max(ZERO, s.granted - s.reserved - used) if idle else ZERO
                if used == 0 and release == 0 and s.granted == 0:
                    if idle:
                        self._slices.pop(key, None)
                    continue
                # Taken out of the slice before the await, not after: a reservation made while
                # Postgres settles must not spend what is being handed back (another process may
                # lease it the moment the settle commits).
                s.pending -= used
                s.granted -= used + release
                try:
                    await pool.fetchval(
                        "SELECT switchyard_quota_settle($1, $2, $3, $4, $5, $6)",
                        s.scope, s.period, self.holder, used, release, LEASE_TTL_SECONDS,
                    )
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                    # Not settled: the database still counts all of it as this process's lease.
                    s.pending += used
                    s.granted += used + release
                    return
                if s.granted < 0:
                    # Spent beyond the lease (an estimate fell short): the settle counted it all.
                    s.granted = ZERO
                if idle and s.granted == 0 and s.reserved == 0 and s.pending == 0:
                    self._slices.pop(key, None)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.flush(release_all=True)
