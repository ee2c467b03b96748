"""How fast the usage ledger takes rows: service.metering.ledger.write_batch by batch size, its
idempotent path, and a commit per row for comparison.

On a fresh migrated database (tests.support.Postgres: the machine's Postgres or an embedded
one) and one connection:
  1. write_batch (COPY into the session's staging table, then INSERT ... ON CONFLICT DO NOTHING
     whose RETURNING feeds the usage_daily rollup, in one transaction) with new rows at batch
     sizes 1, 100, 500 and 2000, --seconds of writing each;
  2. the rows of the 500 phase written again in the same batches: every row a duplicate,
     which is what a replayed spill file or a retried batch costs;
  3. one INSERT ... ON CONFLICT DO NOTHING per row, each its own transaction (a commit per row,
     no rollup): what writing on the request path would cost.
Only the writes are timed; making the synthetic rows (benchmarks/metering_events.py) is not.
The connection's Postgres backend CPU is read from /proc per phase: its share of the write time
says whether the server or the round trips and client set the pace. Every write's answer is
checked (new rows counted as new, duplicates as none) and the ledger and rollup are counted at
the end. The database is dropped afterwards.

    .venv/bin/python -m benchmarks.ledger_ingest
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import asyncpg

from benchmarks.metering_events import EventFactory
from benchmarks.perf_procs import cpu_seconds
from service.metering.events import USAGE_COLUMNS, UsageEvent
from service.metering.ledger import prepare_connection, write_batch

BATCH_SIZES = (1, 100, 500, 2000)
REPLAYED_BATCH = 500  # the gateway's default USAGE_FLUSH_ROWS
_PLACEHOLDERS = ", ".join(f"${i}" for i in range(1, len(USAGE_COLUMNS) + 1))
_ROW_INSERT = (f"INSERT INTO usage_events ({', '.join(USAGE_COLUMNS)}) VALUES ({_PLACEHOLDERS}) "
               "ON CONFLICT DO NOTHING")


@dataclass(frozen=True)
class Phase:
    name: str
    batch: int
    rows: int
    new_rows: int
    write_seconds: float
    backend_cpu_seconds: float | None = None  # the connection's Postgres backend, from /proc

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.write_seconds

    @property
    def ms_per_write(self) -> float:
        return self.write_seconds * 1000 / (self.rows / self.batch)

    @property
    def backend_busy(self) -> float | None:
        """The share of the write time the backend spent on CPU (near 1: Postgres is the limit)."""
        return None if self.backend_cpu_seconds is None else self.backend_cpu_seconds / self.write_seconds

    def as_json(self) -> dict:
        out = asdict(self)
        out.update(rows_per_second=round(self.rows_per_second, 1), ms_per_write=round(self.ms_per_write, 3),
                   backend_busy=None if self.backend_busy is None else round(self.backend_busy, 3))
        return out


class BackendClock:
    """CPU seconds of one connection's Postgres backend, when it runs on this machine."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        pid = conn.get_server_pid()
        self._pids = [pid] if Path(f"/proc/{pid}/stat").exists() else []

    def read(self) -> float | None:
        return cpu_seconds(self._pids) if self._pids else None

    def spent(self, phase: Phase, since: float | None) -> Phase:
        now = self.read()
        if now is None or since is None:
            return phase
        return replace(phase, backend_cpu_seconds=now - since)


async def batched(conn: asyncpg.Connection, factory: EventFactory, batch: int, seconds: float,
                  keep: list[list[UsageEvent]] | None = None) -> Phase:
    rows = new = 0
    spent = 0.0
    while spent < seconds:
        events = factory.make(batch)
        t0 = time.perf_counter()
        stored = await write_batch(conn, events)
        spent += time.perf_counter() - t0
        if stored != len(events):
            raise RuntimeError(f"write_batch stored {stored} of {len(events)} new rows")
        rows, new = rows + len(events), new + stored
        if keep is not None:
            keep.append(events)
    return Phase("write_batch, new rows", batch, rows, new, spent)


async def duplicates(conn: asyncpg.Connection, batches: list[list[UsageEvent]]) -> Phase:
    rows = 0
    spent = 0.0
    for events in batches:
        t0 = time.perf_counter()
        stored = await write_batch(conn, events)
        spent += time.perf_counter() - t0
        if stored:
            raise RuntimeError(f"write_batch stored {stored} rows of a batch it had already stored")
        rows += len(events)
    return Phase("write_batch, all duplicates", len(batches[0]), rows, 0, spent)


async def row_by_row(conn: asyncpg.Connection, factory: EventFactory, seconds: float) -> Phase:
    rows = 0
    spent = 0.0
    statement = await conn.prepare(_ROW_INSERT)
    while spent < seconds:
        # Made a hundred at a time so the timer sees only the inserts, not the row making.
        for event in factory.make(100):
            record = event.record()
            t0 = time.perf_counter()
            # Outside a transaction block each statement commits on its own.
            await statement.fetch(*record)
            spent += time.perf_counter() - t0
            rows += 1
    return Phase("INSERT + commit per row (no rollup)", 1, rows, rows, spent)


SERVER_SETTINGS = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")


async def server_facts(conn: asyncpg.Connection) -> dict[str, str]:
    return {name: await conn.fetchval(f"SHOW {name}") for name in SERVER_SETTINGS}


async def totals(conn: asyncpg.Connection) -> tuple[int, int]:
    events = await conn.fetchval("SELECT count(*) FROM usage_events")
    attempts = await conn.fetchval("SELECT coalesce(sum(attempts), 0) FROM usage_daily")
    return events, attempts


async def run(url: str, args: argparse.Namespace) -> dict:
    factory = EventFactory(tenants=args.tenants, days=args.days)
    conn = await asyncpg.connect(url)
    try:
        facts = await server_facts(conn)
        # The staging table exists before anything is timed, as the pool's init makes it.
        await prepare_connection(conn)
        clock = BackendClock(conn)
        phases: list[Phase] = []
        kept: list[list[UsageEvent]] = []
        for size in args.batch_sizes:
            log(f"write_batch, batch of {size}: {args.seconds:g} s of writes")
            keep = kept if size == REPLAYED_BATCH else None
            start = clock.read()
            phases.append(clock.spent(await batched(conn, factory, size, args.seconds, keep), start))
        if kept:
            log(f"write_batch again, the {sum(map(len, kept))} rows of the {REPLAYED_BATCH}-row phase")
            start = clock.read()
            phases.append(clock.spent(await duplicates(conn, kept), start))
        kept.clear()
        log(f"one INSERT and commit per row: {args.seconds:g} s of writes")
        start = clock.read()
        per_row = clock.spent(await row_by_row(conn, factory, args.seconds), start)
        phases.append(per_row)
        events, attempts = await totals(conn)
    finally:
        await conn.close()
    batched_rows = sum(p.new_rows for p in phases if p.name.startswith("write_batch"))
    if events != batched_rows + per_row.rows or attempts != batched_rows:
        raise RuntimeError(f"ledger holds {events} rows and the rollup {attempts} attempts; expected "
                           f"{batched_rows + per_row.rows} and {batched_rows}")
    return {"postgres": facts, "phases": phases, "ledger_rows": events, "rollup_attempts": attempts,
            "tenants": len(factory.tenants), "days": len(factory.days), "routes": len(factory.routes)}


def table(phases: list[Phase]) -> str:
    lines = ["| write | rows per write | rows | write s | rows/s | ms per write | backend CPU / write time |",
             "|" + "---|" * 7]
    for p in phases:
        busy = "n/a" if p.backend_busy is None else f"{p.backend_busy:.0%}"
        lines.append(f"| {p.name} | {p.batch} | {p.rows:,} | {p.write_seconds:.2f} "
                     f"| {p.rows_per_second:,.0f} | {p.ms_per_write:.3f} | {busy} |")
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[ledger {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ledger_ingest", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5, help="seconds of writing per phase (default 5)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES), metavar="N")
    p.add_argument("--tenants", type=int, default=8)
    p.add_argument("--days", type=int, default=7, help="days of rows, this month only (default 7)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    args = p.parse_args(argv)
    if args.seconds <= 0 or min(args.batch_sizes) < 1 or args.tenants < 1 or args.days < 1:
        p.error("--seconds must be positive; batch sizes, --tenants and --days at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    import uvloop

    from tests.support import LOCAL_ADMIN_URL, Postgres

    args = parse_args(argv)
    pg = Postgres()
    admin = pg.start()
    try:
        url = pg.create_database(migrate=True)
        try:
            log("fresh migrated database ready")
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                out = runner.run(run(url, args))
        finally:
            pg.drop_database(url)
    finally:
        pg.stop()
    where = admin.rsplit("@", 1)[-1].rsplit("/", 1)[0] if admin == LOCAL_ADMIN_URL else "an embedded server"
    facts = out["postgres"]
    print()
    print(f"Usage ledger ingest, one connection, Postgres {facts['server_version']} at {where} "
          f"(fsync={facts['fsync']}, synchronous_commit={facts['synchronous_commit']}, "
          f"wal_sync_method={facts['wal_sync_method']}, shared_buffers={facts['shared_buffers']}); "
          f"rows from {out['tenants']} tenants, {out['routes']} routes, {out['days']} days")
    print(table(out["phases"]))
    print(f"checked: every new row stored once, every duplicate refused; ledger {out['ledger_rows']:,} rows, "
          f"rollup {out['rollup_attempts']:,} attempts (write_batch rows only)")
    if args.json is not None:
        out["phases"] = [p.as_json() for p in out["phases"]]
        args.json.write_text(json.dumps(out, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
