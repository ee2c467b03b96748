"""Writes usage rows to Postgres in batches, off the request path, without ever losing one.

Rows queue in memory and are flushed by size and by time: COPY into a temporary table, then
one INSERT ... ON CONFLICT DO NOTHING into the ledger whose RETURNING feeds the daily rollups
(per tenant, project, key, model and front end; the same per tag; per end user) and each tenant's hourly
billed spend (where the spend-spike alert is judged, in the same transaction), so a row written
twice (a replay, a retried batch) is stored and counted once. When Postgres is unreachable,
batches go to an append-only spill file (fsynced) and are replayed when it returns; on shutdown
the queue drains.

The rollups' `direct_billed_usd` is the always-Baseten-direct baseline: a row whose model has no
direct price (or an attempt that answered nothing) counts at what it was billed, so that
`direct_billed_usd - billed_usd` over any group is the savings claimed and no more.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog

from service.alerts.rules import DEFAULT_SPIKE, SpikeRule
from service.metering.events import USAGE_COLUMNS, UsageEvent

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
    try:
        await conn.execute(_CREATE_INCOMING)
    except asyncpg.UndefinedTableError:
        pass  # not migrated yet; write_batch creates it on first use


async def write_batch(conn: asyncpg.Connection, events: list[UsageEvent],
                      spike: SpikeRule = DEFAULT_SPIKE) -> int:
    """Store a batch idempotently; returns how many rows were new."""
    records = [e.record() for e in events]
    for first_try in (True, False):
        try:
            async with conn.transaction():
                await conn.copy_records_to_table("usage_incoming", records=records, columns=USAGE_COLUMNS)
                return await conn.fetchval(_INSERT_AND_ROLL_UP, *spike.args())
        except asyncpg.UndefinedTableError:
            if not first_try:
                raise
            await conn.execute(_CREATE_INCOMING)
    raise AssertionError("unreachable")


class SpillFile:
    """An append-only JSON-lines file for rows Postgres could not take; fsynced per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, events: list[UsageEvent]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(orjson.dumps(e.to_json()) + b"\n" for e in events)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def claim(self) -> Path | None:
        """Move the file aside atomically so new spills start a fresh file while it replays."""
        if not self.path.exists():
            return None
        claimed = self.path.with_name(f"{self.path.name}.replaying-{os.getpid()}")
        try:
            os.replace(self.path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def leftovers(self) -> list[Path]:
        """Files a previous process claimed but did not finish replaying."""
        return sorted(self.path.parent.glob(f"{self.path.name}.replaying-*"))

    @staticmethod
    def read(path: Path) -> list[UsageEvent]:
        events = []
        for line in path.read_bytes().splitlines():
            if line.strip():
                try:
                    events.append(UsageEvent.from_json(orjson.loads(line)))
                except (ValueError, KeyError, TypeError):
                    # A torn last line from a crash mid-write; the batch it belonged to was not acknowledged.
                    log.error("usage_spill_line_unreadable", path=str(path))
        return events


class UsageWriter:
    def __init__(
        self,
        pool_getter: Callable[[], asyncpg.Pool | None],
        spill_path: Path,
        *,
        max_queue: int = 100_000,
        flush_rows: int = 500,
        flush_seconds: float = 0.2,
        metrics: Any = None,
        spike: SpikeRule = DEFAULT_SPIKE,
    ) -> None:
        self._pool_getter = pool_getter
        self._spike = spike
        self.spill = SpillFile(spill_path)
        self._queue: deque[UsageEvent] = deque()
        self._max_queue = max_queue
        self._flush_rows = flush_rows
        self._flush_seconds = flush_seconds
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._db_ok = True
        self.written = 0
        self.spilled = 0
        self.replayed = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, event: UsageEvent) -> None:
        """Never blocks and never drops: past the queue's bound, rows go straight to the spill file."""
        if len(self._queue) >= self._max_queue:
            self._spill([event])
            return
        self._queue.append(event)
        if len(self._queue) >= self._flush_rows:
            self._wake.set()
        self._gauge()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def stop(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        # Whatever is left (the database is away) goes to disk, not to oblivion.
        if self._queue:
            self._spill(list(self._queue))
            self._queue.clear()

    async def _run(self) -> None:
        replay_every, since_replay = 5.0, 5.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            since_replay += self._flush_seconds
            # Not only after a successful write: when traffic stopped during the outage, nothing
            # else would ever find out that the database is back.
            if since_replay >= replay_every:
                since_replay = 0.0
                await self.replay()
            if self._closing:
                await self.flush()
                return

    async def flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), max(self._flush_rows, 1) * 4))]
            self._gauge()
            if not await self._write(batch):
                self._spill(batch)

    async def _write(self, batch: list[UsageEvent]) -> bool:
        pool = self._pool_getter()
        if pool is None:
            return False
        try:
            async with pool.acquire(timeout=2) as conn:
                await write_batch(conn, batch, self._spike)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
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

    async def _database_answers(self) -> bool:
        pool = self._pool_getter()
        if pool is None:
            return False
        try:
            async with asyncio.timeout(2):
                await pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        self._db_ok = True
        return True

    def _spill(self, events: list[UsageEvent]) -> None:
        self.spill.append(events)
        self.spilled += len(events)
        if self._metrics is not None:
            self._metrics.usage_rows.labels("spilled").inc(len(events))
        log.warning("usage_spilled", rows=len(events), path=str(self.spill.path))

    async def replay(self) -> int:
        """Write spilled rows back; idempotent, so a crash mid-replay only repeats work."""
        if not self._db_ok and not await self._database_answers():
            return 0
        paths = self.spill.leftovers()
        claimed = self.spill.claim()
        if claimed is not None:
            paths.append(claimed)
        total = 0
        for path in paths:
            events = SpillFile.read(path)
            ok = True
            for i in range(0, len(events), 1000):
                if not await self._write(events[i : i + 1000]):
                    ok = False
                    break
            if not ok:
                # Put it back for the next try; rows already written will be skipped as duplicates.
                self.spill.append(events)
                path.unlink(missing_ok=True)
                return total
            path.unlink(missing_ok=True)
            total += len(events)
        if total:
            self.replayed += total
            if self._metrics is not None:
                self._metrics.usage_rows.labels("replayed").inc(total)
            log.info("usage_replayed", rows=total)
        return total

    def _gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.usage_queue_depth.set(len(self._queue))
