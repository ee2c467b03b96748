"""Writes usage rows to Postgres in batches, off the request path, without ever losing one.

Rows queue in memory and are flushed by size and by time: COPY into a temporary table, then
one INSERT ... ON CONFLICT DO NOTHING into the ledger whose RETURNING feeds the daily rollups
(per tenant, project, key, model and front end; the same per tag; per end user) and each tenant's hourly
billed spend (where the spend-spike alert is judged, in the same transaction), so a row written
twice (a replay, a retried batch) is stored and counted once.

Every row is first appended to this process's journal (service.metering.journal), and the request
path awaits `durable()` before its answer's last byte: a row the client was answered for is on disk
even if the process dies the next instant. Rows leave memory only once Postgres holds them (a failed
batch stays at the head of the queue and is retried with backoff); journal segments are deleted once
Postgres holds all their rows, and files no live process holds (a dead worker's, a long outage's)
are replayed continuously. Nothing the writer meets -- a database error, a disk error, a bug -- ends
it: the failure is logged and counted and the loop goes on.

The rollups' `direct_billed_usd` is the always-Baseten-direct baseline: a row whose model has no
direct price (or an attempt that answered nothing) counts at what it was billed, so that
`direct_billed_usd - billed_usd` over any group is the savings claimed and no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from service.alerts.rules import DEFAULT_SPIKE, SpikeRule
from service.db.pool import Conn
from service.metering.events import USAGE_COLUMNS, UsageEvent
from service.metering.journal import Journal
from service.metering.journal_replay import claim, orphans, set_aside
from service.tasks import cancel_and_wait

log = structlog.get_logger("switchyard.ledger")

_CREATE_INCOMING = (
    "CREATE TEMP TABLE IF NOT EXISTS usage_incoming (LIKE usage_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COLUMNS = ", ".join(USAGE_COLUMNS)
_NIL = "'00000000-0000-0000-0000-000000000000'::uuid"  # the rollups' "no project" / "no key"
_MEASURES = """requests, attempts, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
        provider_cost_usd, billed_usd, direct_billed_usd"""
_SUMS = """count(*) FILTER (WHERE status = 'ok'), count(*), sum(prompt_tokens), sum(cached_tokens),
           sum(completion_tokens), sum(reasoning_tokens), sum(provider_cost_usd), sum(billed_usd),
           sum(COALESCE(direct_billed_usd, billed_usd))"""
_ADD = ", ".join(f"{m} = d.{m} + EXCLUDED.{m}" for m in (
    "requests", "attempts", "prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens",
    "provider_cost_usd", "billed_usd", "direct_billed_usd"))
# Rollup rows are upserted in key order, so two batches touching the same rows lock them in the
# same order instead of deadlocking.
_INSERT_AND_ROLL_UP = f"""
WITH inserted AS (
    INSERT INTO usage_events ({_COLUMNS})
    SELECT {_COLUMNS} FROM usage_incoming
    ON CONFLICT DO NOTHING
    RETURNING started_at, tenant_id, project_id, key_id, tags, end_user, served_model, front_end, status,
              prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, provider_cost_usd, billed_usd,
              direct_billed_usd
), rolled AS (
    INSERT INTO usage_daily AS d (day, tenant_id, project_id, key_id, served_model, front_end, {_MEASURES})
    SELECT (started_at AT TIME ZONE 'UTC')::date, tenant_id, COALESCE(project_id, {_NIL}), COALESCE(key_id, {_NIL}),
           served_model, front_end, {_SUMS}
    FROM inserted
    GROUP BY 1, 2, 3, 4, 5, 6
    ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (day, tenant_id, project_id, key_id, served_model, front_end) DO UPDATE SET {_ADD}
    RETURNING 1
), tagged AS (
    -- Per tag ('' for an untagged row), each of a row's tags once.
    INSERT INTO usage_daily_tags AS d (day, tenant_id, tag, project_id, key_id, served_model, front_end, {_MEASURES})
    SELECT (started_at AT TIME ZONE 'UTC')::date, tenant_id, tg.tag, COALESCE(project_id, {_NIL}),
           COALESCE(key_id, {_NIL}), served_model, front_end, {_SUMS}
    FROM inserted
    CROSS JOIN LATERAL (SELECT DISTINCT t FROM unnest(CASE WHEN cardinality(tags) = 0 THEN ARRAY['']
                                                     ELSE tags END) AS t) AS tg(tag)
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (day, tenant_id, tag, project_id, key_id, served_model, front_end) DO UPDATE SET {_ADD}
    RETURNING 1
), users AS (
    -- Per end user ('' for a row without one): what per-user views read instead of the ledger.
    INSERT INTO usage_daily_users AS d (tenant_id, day, end_user, {_MEASURES})
    SELECT tenant_id, (started_at AT TIME ZONE 'UTC')::date, COALESCE(end_user, ''), {_SUMS}
    FROM inserted
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, day, end_user) DO UPDATE SET {_ADD}
    RETURNING 1
), hourly AS (
    INSERT INTO tenant_spend_hourly AS h (tenant_id, hour, billed_usd)
    SELECT tenant_id, date_trunc('hour', started_at, 'UTC'), sum(billed_usd)
    FROM inserted
    GROUP BY 1, 2
    ON CONFLICT (tenant_id, hour) DO UPDATE SET billed_usd = h.billed_usd + EXCLUDED.billed_usd
    RETURNING h.tenant_id, h.hour, h.billed_usd
), spikes AS (
    SELECT switchyard_alert_hourly_spend(tenant_id, hour, billed_usd, $1, $2, $3, $4) AS event_id
    FROM hourly
    WHERE $1::numeric > 0 AND billed_usd >= $2::numeric
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(event_id) FROM spikes)
"""


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Once per pooled connection: the session's staging table (a round trip per batch saved)."""
    with contextlib.suppress(asyncpg.UndefinedTableError):  # not migrated yet: write_batch creates it
        await conn.execute(_CREATE_INCOMING)


async def write_batch(conn: Conn, events: list[UsageEvent],
                      spike: SpikeRule = DEFAULT_SPIKE) -> int:
    """Store a batch idempotently; returns how many rows were new."""
    records = [e.record() for e in events]
    for first_try in (True, False):
        try:
            async with conn.transaction():
                await conn.copy_records_to_table("usage_incoming", records=records, columns=USAGE_COLUMNS)
                new: int = await conn.fetchval(_INSERT_AND_ROLL_UP, *spike.args())
                return new
        except asyncpg.UndefinedTableError:
            if not first_try:
                raise
            await conn.execute(_CREATE_INCOMING)
    raise AssertionError("unreachable")


# Postgres answered and refuses the data (a NUL in text, a value out of range): retrying cannot help.
_REFUSED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
_REPLAY_ROWS = 1000


class UsageWriter:
    def __init__(self, pool_getter: Callable[[], asyncpg.Pool | None], journal_dir: Path | None, *,
                 legacy_spill: tuple[Path, ...] = (), journal_wait: str = "sync", max_queue: int = 100_000,
                 flush_rows: int = 500, flush_seconds: float = 0.2, replay_seconds: float = 5.0,
                 metrics: Any = None, spike: SpikeRule = DEFAULT_SPIKE) -> None:
        """`journal_dir` None: no journal (rows live in memory until Postgres takes them; for
        measuring what the journal costs, never for production)."""
        self._pool_getter = pool_getter
        self._spike = spike
        self.journal = (Journal(journal_dir, wait_for=journal_wait, metrics=metrics)
                        if journal_dir is not None else None)
        self._journal_dir = journal_dir
        self._legacy = legacy_spill
        self._queue: deque[tuple[int, UsageEvent]] = deque()
        self._max_queue = max_queue
        self._flush_rows = max(flush_rows, 1)
        self._flush_seconds = flush_seconds
        self._replay_seconds = replay_seconds
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._db_ok = True
        self._retry_at = 0.0
        self._backoff = 0.0
        self._failed_upto = 0  # rows up to this seq were counted as spilled (a write of theirs failed)
        self._seq = itertools.count(1)  # without a journal
        self.written = 0
        self.spilled = 0
        self.replayed = 0
        self.dropped = 0
        self.rejected = 0
        self.loop_errors = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, event: UsageEvent) -> None:
        """Never blocks, never touches the disk: the journal thread writes the row."""
        if self.journal is None:
            seq = next(self._seq)
        else:
            try:
                seq = self.journal.append(event)
            except Exception as exc:  # a row the journal cannot encode still goes to Postgres
                seq = self.journal.appended
                if self._metrics is not None:
                    self._metrics.usage_journal_errors.labels("encode").inc()
                log.exception("usage_journal_encode_failed", request_id=event.request_id, error=type(exc).__name__)
        self._queue.append((seq, event))
        if len(self._queue) >= self._flush_rows or len(self._queue) > self._max_queue:
            self._wake.set()
        self._gauge()

    async def durable(self) -> None:
        """Returns once every row submitted so far is on disk (at once without a journal)."""
        if self.journal is not None:
            await self.journal.durable()

    def start(self) -> None:
        if self.journal is not None:
            self.journal.start()
        self._tasks = [asyncio.create_task(self._guarded("usage-writer", self._cycle), name="usage-writer"),
                       asyncio.create_task(self._guarded("usage-replay", self._replay_cycle), name="usage-replay")]

    async def stop(self) -> None:
        """Drains what Postgres takes now; the journal keeps the rest for whichever process starts next."""
        self._closing = True
        self._wake.set()
        for task in self._tasks[1:]:
            await cancel_and_wait(task)  # a replay is repeated by whichever process starts next
        if self._tasks:
            await self._tasks[0]
        if self._queue and self.journal is None:
            self.dropped += len(self._queue)
            if self._metrics is not None:
                self._metrics.usage_rows.labels("dropped").inc(len(self._queue))
            log.error("usage_rows_dropped", rows=len(self._queue), reason="no journal")
        elif self._queue:
            log.warning("usage_rows_left_in_journal", rows=len(self._queue))
        if self.journal is not None:
            await self.journal.close()

    async def _guarded(self, name: str, step: Callable[[], Awaitable[bool]]) -> None:
        """Runs `step` until it says it is done; an exception is logged and counted, and the loop goes
        on after a backoff: the data it was handling stays where it was (queue or journal)."""
        backoff = 0.0
        while True:
            try:
                if await step():
                    return
                backoff = 0.0
            except Exception as exc:  # this loop must not die
                self.loop_errors += 1
                if self._metrics is not None:
                    self._metrics.usage_writer_errors.labels(name).inc()
                log.exception("usage_writer_loop_failed", task=name, error=type(exc).__name__)
                backoff = min(max(backoff * 2, 0.1), 5.0)
                if self._closing:
                    return
                await asyncio.sleep(backoff)

    async def _cycle(self) -> bool:
        if not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_seconds)
            self._wake.clear()
        if len(self._queue) > self._max_queue:
            await self._shed()
        loop = asyncio.get_running_loop()
        if self._closing or loop.time() >= self._retry_at:
            if await self.flush():
                self._backoff = 0.0
            else:
                # Postgres is away: retry less and less often, rows safe in the journal meanwhile.
                self._backoff = min(max(self._backoff * 2, self._flush_seconds), 5.0)
                self._retry_at = loop.time() + self._backoff
        return self._closing

    async def flush(self) -> bool:
        """Writes the queue in order; a batch leaves the queue only once Postgres holds it."""
        while self._queue:
            batch = list(itertools.islice(self._queue, self._flush_rows * 4))
            first, last = batch[0][0], batch[-1][0]
            if not await self._write([e for _, e in batch]):
                if last > self._failed_upto:
                    self._count_spilled(sum(1 for seq, _ in batch if seq > self._failed_upto))
                    self._failed_upto = last
                return False
            for _ in batch:
                self._queue.popleft()
            if first <= self._failed_upto:
                self._count_replayed(sum(1 for seq, _ in batch if seq <= self._failed_upto))
            if self.journal is not None:
                self.journal.commit(last)
            self._gauge()
        return True

    async def _shed(self) -> None:
        """The queue outgrew its bound (a long outage): the journal's sealed segments leave this
        process's care and replay from disk, so memory stays bounded and no row is lost."""
        if self.journal is None:
            excess = len(self._queue) - self._max_queue
            for _ in range(excess):
                self._queue.popleft()
            self.dropped += excess
            if self._metrics is not None:
                self._metrics.usage_rows.labels("dropped").inc(excess)
            log.error("usage_rows_dropped", rows=excess, reason="queue full without a journal")
            return
        last = await self.journal.handoff()
        shed = 0
        while self._queue and self._queue[0][0] <= last:
            seq, _ = self._queue.popleft()
            shed += 1
            if seq > self._failed_upto:
                self._count_spilled(1)
        self._failed_upto = max(self._failed_upto, last)
        self._gauge()
        log.warning("usage_rows_handed_to_journal", rows=shed)

    async def _write(self, batch: list[UsageEvent]) -> bool:
        """True once Postgres holds the batch (less any row it refuses, set aside); False while it is away."""
        pool = self._pool_getter()
        if pool is None:
            return False
        try:
            async with pool.acquire(timeout=2) as conn:
                await write_batch(conn, batch, self._spike)
        except _REFUSED as exc:
            # Postgres answered, and refuses something in this batch: halves find the row, so one bad
            # row neither stalls the queue nor takes good rows with it.
            if len(batch) == 1:
                await self._set_aside(batch[0], exc)
                return True
            middle = len(batch) // 2
            return await self._write(batch[:middle]) and await self._write(batch[middle:])
        except _DB_ERRORS as exc:
            self._db_ok = False
            if self._metrics is not None:
                self._metrics.usage_write_errors.inc()
            log.warning("usage_write_failed", rows=len(batch), error=type(exc).__name__)
            return False
        self._db_ok = True
        self.written += len(batch)
        if self._metrics is not None:
            self._metrics.usage_rows.labels("written").inc(len(batch))
        return True

    async def _set_aside(self, event: UsageEvent, exc: Exception) -> None:
        """A row Postgres will never take is kept for an operator, outside what is replayed."""
        self.rejected += 1
        if self._metrics is not None:
            self._metrics.usage_rows.labels("rejected").inc()
        log.error("usage_row_refused", request_id=event.request_id, attempt=event.attempt,
                  error=type(exc).__name__, detail=str(exc)[:200])
        if self._journal_dir is not None:
            await asyncio.to_thread(set_aside, self._journal_dir, event)

    async def _database_answers(self) -> bool:
        pool = self._pool_getter()
        if pool is None:
            return False
        try:
            async with asyncio.timeout(2):
                await pool.fetchval("SELECT 1")
        except _DB_ERRORS:
            return False
        self._db_ok = True
        return True

    async def _replay_cycle(self) -> bool:
        await self.replay()
        await asyncio.sleep(self._replay_seconds)
        return False

    async def replay(self) -> int:
        """Writes back every journal file no live process holds; idempotent, so a crash mid-replay only
        repeats work. Reads a batch at a time, in a thread, so memory stays bounded."""
        if self._journal_dir is None and not self._legacy:
            return 0
        if not self._db_ok and not await self._database_answers():
            return 0
        total = 0
        for path in await asyncio.to_thread(orphans, self._journal_dir, self._legacy):
            claimed = await asyncio.to_thread(claim, path, self._metrics)
            if claimed is None:
                continue  # a live process's, or already replayed by another
            done = False
            try:
                while events := await asyncio.to_thread(claimed.read, _REPLAY_ROWS):
                    if not await self._write(events):
                        return total  # the next cycle starts the file over; rows stored are skipped
                    total += len(events)
                    self._count_replayed(len(events))
                done = True
            finally:
                await asyncio.to_thread(claimed.finish if done else claimed.release)
            log.info("usage_journal_replayed", path=path.name, torn_lines=claimed.torn)
        return total

    def _count_spilled(self, rows: int) -> None:
        self.spilled += rows
        if self._metrics is not None:
            self._metrics.usage_rows.labels("spilled").inc(rows)

    def _count_replayed(self, rows: int) -> None:
        self.replayed += rows
        if self._metrics is not None:
            self._metrics.usage_rows.labels("replayed").inc(rows)

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.usage_queue_depth.set(len(self._queue))
