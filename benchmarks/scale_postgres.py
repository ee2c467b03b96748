"""The scale model's Postgres: a private cluster with pg_stat_statements, and what it did in a window.

The machine's shared Postgres is used by everything else on it, and loading pg_stat_statements
needs a restart, so the model starts its own cluster from the same binaries (initdb + pg_ctl, as
the `postgres` user when run as root), on a free port, with Debian's defaults (fsync and
synchronous_commit on) and pg_stat_statements preloaded. Every process of that cluster is the
model's, so their CPU from /proc is Postgres's whole cost: backends, WAL writer, checkpointer,
autovacuum.

A Snapshot holds the cumulative counters; the difference of two is what a window cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.perf_procs import cpu_seconds, descendants
from benchmarks.perf_upstream import free_port
from tests.support import execute_sql

# The statements' texts, sorted into the parts of the gateway that send them. First match wins.
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ledger writes", re.compile(r"usage_incoming|usage_events|usage_daily|tenant_spend_hourly|^COPY", re.IGNORECASE)),
    ("quota leases (rate limits, budgets)", re.compile(r"switchyard_quota_", re.IGNORECASE)),
    # A key's load joins its tenant, project and budget rules: one lookup, so it counts here.
    ("key cache (auth lookups, LISTEN)", re.compile(r"api_keys|\bLISTEN\b|\btenants\b|\bprojects\b", re.IGNORECASE)),
    ("budget rules", re.compile(r"\bbudgets\b", re.IGNORECASE)),
    ("pool and health checks", re.compile(r"^(SELECT 1|SELECT \$1|RESET ALL|SET |BEGIN|COMMIT|ROLLBACK|"
                                          r"SELECT pg_advisory_unlock_all|CLOSE ALL|UNLISTEN)", re.IGNORECASE)),
)
OTHER = "other"
# The model's own queries (snapshots, row counts, pg_stat_activity samples, key notifications) run
# as this role, so pg_stat_statements can leave them out of the gateway's figures.
HARNESS_ROLE = "scale_harness"
# Transactions the harness ran, to take out of pg_stat_database's count (which has no per-role split).
HARNESS_TALLY = {"transactions": 0}


def categorise(query: str) -> str:
    text = query.strip()
    for name, pattern in CATEGORIES:
        if pattern.search(text):
            return name
    return OTHER


def _bindir() -> Path:
    try:
        # pg_config from PATH, as the Postgres packages install it.
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,  # noqa: S607
                             check=True, timeout=10)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    except (OSError, subprocess.SubprocessError):
        pass
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("no Postgres server binaries (initdb) on this machine")
    return found[-1].parent


class PrivateCluster:
    """initdb, start, stop and remove one throwaway Postgres cluster."""

    def __init__(self, max_connections: int = 300) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="switchyard-scale-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.max_connections = max_connections
        self.bindir = _bindir()
        # Postgres refuses to run as root: the cluster belongs to the `postgres` user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.started = False

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        # The cluster's own binaries, with arguments this class built.
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)  # noqa: S603

    def start(self) -> PrivateCluster:
        self.root.chmod(0o755)
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        self.port = free_port()
        options = " ".join([
            f"-c port={self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.root}",
            f"-c max_connections={self.max_connections}", "-c shared_preload_libraries=pg_stat_statements",
            "-c pg_stat_statements.track=top", "-c pg_stat_statements.max=5000", "-c track_io_timing=on",
        ])
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.root / "postgres.log"), "-w", "-t", "60", "start")
        self.started = True
        # In template1, so the database the model creates has the view too.
        asyncio.run(execute_sql(self.admin_url.rsplit("/", 1)[0] + "/template1",
                             "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        asyncio.run(execute_sql(self.admin_url, f"CREATE ROLE {HARNESS_ROLE} LOGIN SUPERUSER"))
        return self

    @property
    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def cpu_seconds(self) -> float:
        """CPU of every process of the cluster so far (exited backends are not counted: the
        gateways' pools keep theirs for the whole run)."""
        return cpu_seconds(descendants(self.postmaster_pid))

    def stop(self) -> None:
        if self.started:
            self.started = False
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def harness_url(url: str, cluster: PrivateCluster | None) -> str:
    """`url` as the harness role (on a private cluster; a given Postgres has no such role)."""
    return url.replace("postgresql://postgres@", f"postgresql://{HARNESS_ROLE}@", 1) if cluster else url


def count_transaction(n: int = 1) -> None:
    HARNESS_TALLY["transactions"] += n


def returned_row(row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None:
        raise RuntimeError("pg_stat_database has no row for the current database")
    return row


@dataclass
class Snapshot:
    cpu_s: float
    database: dict[str, float]
    tables: dict[str, dict[str, float]]
    statements: dict[str, dict[str, float]] = field(default_factory=dict)  # query text -> calls, time, rows
    wal_bytes: float = 0.0

    def minus(self, before: Snapshot) -> dict[str, Any]:
        """The window between `before` and this snapshot."""
        tables = {}
        for name, now in self.tables.items():
            then = before.tables.get(name, {})
            delta = {k: v - then.get(k, 0) for k, v in now.items()}
            if any(delta.values()):
                tables[name] = delta
        statements = {}
        for query, now in self.statements.items():
            then = before.statements.get(query, {})
            delta = {k: v - then.get(k, 0) for k, v in now.items()}
            if delta["calls"] > 0:
                statements[query] = delta
        return {
            "postgres_cpu_s": round(self.cpu_s - before.cpu_s, 3),
            "database": {k: v - before.database.get(k, 0) for k, v in self.database.items()},
            "tables": tables,
            "statements": statements,
            "wal_bytes": self.wal_bytes - before.wal_bytes,
        }


_DATABASE = """SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated,
                      tup_deleted, blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()"""
_TABLES = "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd FROM pg_stat_user_tables"
_STATEMENTS = """SELECT query, sum(calls) AS calls, sum(total_exec_time) AS exec_ms, sum(rows) AS rows,
                        sum(wal_bytes) AS wal_bytes
                 FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
                   AND userid <> (SELECT oid FROM pg_roles WHERE rolname = $2)
                 GROUP BY query"""


async def snapshot(url: str, cluster: PrivateCluster | None) -> Snapshot:
    """The cumulative counters now; statistics are flushed by backends when they go idle, so the
    caller waits a moment after the load stops (pg_stat_force_next_flush is Postgres 15's own)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        db = dict(returned_row(await conn.fetchrow(_DATABASE)))
        tables = {r["relname"]: {k: float(r[k]) for k in ("n_tup_ins", "n_tup_upd", "n_tup_del", "n_tup_hot_upd")}
                  for r in await conn.fetch(_TABLES)}
        wal = float(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
        statements: dict[str, dict[str, float]] = {}
        if cluster is not None:
            name = await conn.fetchval("SELECT current_database()")
            for r in await conn.fetch(_STATEMENTS, name, HARNESS_ROLE):
                statements[r["query"]] = {"calls": float(r["calls"]), "exec_ms": float(r["exec_ms"]),
                                          "rows": float(r["rows"]), "wal_bytes": float(r["wal_bytes"] or 0)}
    finally:
        await conn.close()
    count_transaction(6 if cluster is not None else 4)
    return Snapshot(cluster.cpu_seconds() if cluster is not None else 0.0, {k: float(v) for k, v in db.items()},
                    tables, statements, wal)


async def activity(url: str) -> dict[str, int]:
    """What the database's other backends are doing right now: active, and waiting on what."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    count_transaction()
    out = {"backends": len(rows), "active": 0}
    for r in rows:
        if r["state"] == "active":
            out["active"] += 1
            if r["wait_event_type"]:
                key = f"waiting:{r['wait_event_type']}:{r['wait_event']}"
                out[key] = out.get(key, 0) + 1
    return out
