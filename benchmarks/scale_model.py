"""Scale model (issue 16, item 4): what N gateway instances cost one Postgres, per 1,000 requests.

    python -m benchmarks.scale_model [--instances 4] [--workers 2] [--rate 400] [--duration 60]

  1. a private Postgres cluster with pg_stat_statements (benchmarks/scale_postgres.py says why),
     migrated, holding --tenants tenants of --keys keys each; every tenant has a hard monthly
     budget, every other key a hard daily one, and every key rpm/tpm limits, so each request goes
     through two to four quota leases (none ever refuses);
  2. nginx answering canned Baseten completions (the benchmark's fast upstream), and --instances
     `switchyard serve --workers W`, each on its own port and data directory, all on that database;
  3. a warm-up, then an idle window (the instances' fixed background cost: lease renewals, flushes,
     health checks), then --duration seconds of an open-loop client at --rate requests/s in all,
     spread over the instances and the keys at random, with --key-changes key notifications a
     second (an admin changing a key: every process reloads it);
  4. from pg_stat_statements, pg_stat_database, pg_stat_user_tables, the WAL position and /proc:
     statements, transactions, rows written, WAL and Postgres CPU per 1,000 gateway requests,
     less the idle window's cost for the same time, broken down by the part of the gateway that
     sent each statement; results/scale-<timestamp>.json and a table for docs/scale.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.perf_gateway import Gateway, gateway_environment, preflight
from benchmarks.perf_procs import cpu_seconds
from benchmarks.perf_upstream import Nginx, request_bytes
from benchmarks.scale_load import drive, sample_activity, wait_for_rows
from benchmarks.scale_postgres import HARNESS_TALLY, PrivateCluster, count_transaction, harness_url, snapshot
from benchmarks.scale_report import derive, report

RESULTS_DIR = Path(__file__).parent / "results"
# A backend that goes idle reports its table and transaction counts up to 10 s later (Postgres 15's
# PGSTAT_IDLE_INTERVAL): a window closes only after that, the idle cost of the wait taken out.
STATS_LAG_SECONDS = 11.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_model", description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=4, help="gateway instances (default 4)")
    p.add_argument("--workers", type=int, default=2, help="workers per instance (default 2)")
    p.add_argument("--rate", type=float, default=400, help="requests/s over all instances (default 400)")
    p.add_argument("--duration", type=float, default=60, help="seconds of the measured window (default 60)")
    p.add_argument("--warmup", type=float, default=10, help="seconds of load before measuring (default 10)")
    p.add_argument("--idle", type=float, default=20, help="seconds of the idle window (default 20; 0 skips)")
    p.add_argument("--tenants", type=int, default=20)
    p.add_argument("--keys", type=int, default=5, help="keys per tenant (default 5)")
    p.add_argument("--max-in-flight", type=int, default=256,
                   help="unanswered requests past which the client sheds instead of sending (default 256)")
    p.add_argument("--key-changes", type=float, default=1.0, help="key change notifications a second (default 1)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--admin-url", help="use this Postgres (an admin URL) instead of a private cluster: "
                   "no per-statement breakdown and no Postgres CPU then")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                   help="print the figures of an earlier run's results file again, and run nothing")
    args = p.parse_args(argv)
    if min(args.instances, args.workers, args.tenants, args.keys) < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("--instances, --workers, --tenants, --keys, --rate and --duration must be positive")
    return args


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def seed(url: str, tenants: int, keys: int) -> list[str]:
    """Tenants with a hard monthly budget far above what the run spends, keys with rate limits far
    above the run's rate: every request takes the lease path, none is refused."""
    from service.auth import tenants as records
    from service.metering.budget_records import upsert_budget

    conn = await asyncpg.connect(url)
    out = []
    try:
        for t in range(tenants):
            tenant = await records.create_tenant(conn, f"scale-tenant-{t}", markup=Decimal("0.1"))
            await upsert_budget(conn, tenant.id, period="month", limit_usd=Decimal(1_000_000), hard=True)
            for k in range(keys):
                key, record = await records.create_key(conn, tenant.id, rpm_limit=1_000_000,
                                                       tpm_limit=1_000_000_000)
                if k % 2 == 0:
                    await upsert_budget(conn, tenant.id, period="day", limit_usd=Decimal(100_000), hard=True,
                                        key_id=record.id)
                out.append(key)
    finally:
        await conn.close()
    return out


async def change_keys(url: str, prefixes: list[str], per_second: float, stop: asyncio.Event) -> int:
    """Key change notifications, as the admin API sends them: each makes every process reload that key."""
    from service.auth.cache import notify_key_changed

    if per_second <= 0:
        await stop.wait()
        return 0
    conn = await asyncpg.connect(url)
    sent = 0
    rng = random.Random(7)  # noqa: S311 -- picks keys to change; nothing secret
    try:
        while not stop.is_set():
            await notify_key_changed(conn, rng.choice(prefixes))
            count_transaction()
            sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / per_second)
    finally:
        await conn.close()
    return sent


async def measured_window(args: argparse.Namespace, gateway_url: str, cluster: PrivateCluster | None,
                          gateways: list[Gateway], keys: list[str]) -> dict[str, Any]:
    from service.auth.keys import key_prefix

    url = harness_url(gateway_url, cluster)  # the model's own queries, told apart from the gateways'

    body = request_bytes(stream=False)
    urls = [g.url + "/v1/chat/completions" for g in gateways]
    prefixes = [key_prefix(k) for k in keys]
    log(f"warm-up: {args.rate:g} req/s for {args.warmup:g} s")
    warm = await drive(urls, keys, body, args.rate, args.warmup, seed=1, max_in_flight=args.max_in_flight)
    rows = await wait_for_rows(url, warm.ok + len(gateways))
    out: dict[str, Any] = {"warmup": warm.as_json()}
    if args.idle > 0:
        log(f"idle window: {args.idle:g} s, no requests")
        await asyncio.sleep(STATS_LAG_SECONDS)
        before, gw_before = await snapshot(url, cluster), _gateway_cpu(gateways)
        await asyncio.sleep(args.idle)
        out["idle"] = (await snapshot(url, cluster)).minus(before)
        out["idle"]["harness_transactions"] = 6 if cluster else 4  # the opening snapshot's, flushed as it closed
        out["idle"]["seconds"] = args.idle
        out["idle"]["gateway_cpu_s"] = round(_gateway_cpu(gateways) - gw_before, 3)
    log(f"measured window: {args.rate:g} req/s for {args.duration:g} s over {len(urls)} instances, "
        f"{args.key_changes:g} key changes/s")
    before, gw_before, started = await snapshot(url, cluster), _gateway_cpu(gateways), time.monotonic()
    harness_0 = HARNESS_TALLY["transactions"]
    stop = asyncio.Event()
    changes = asyncio.create_task(change_keys(url, prefixes, args.key_changes, stop))
    activity = asyncio.create_task(sample_activity(url, stop))
    try:
        load = await drive(urls, keys, body, args.rate, args.duration, seed=2,
                           max_in_flight=args.max_in_flight)
    finally:
        stop.set()
    out["key_changes"] = await changes
    out["activity"] = await activity
    # The ledger is written in batches: the window closes once every answered request has its row.
    out["ledger_rows_in_window"] = await wait_for_rows(url, rows + load.ok) - rows
    await asyncio.sleep(STATS_LAG_SECONDS)
    out["seconds"] = round(time.monotonic() - started, 2)
    out["loaded"] = (await snapshot(url, cluster)).minus(before)
    out["loaded"]["harness_transactions"] = HARNESS_TALLY["transactions"] - harness_0
    out["gateway_cpu_s"] = round(_gateway_cpu(gateways) - gw_before, 3)
    out["load"] = load.as_json()
    return out


def _gateway_cpu(gateways: list[Gateway]) -> float:
    return sum(cpu_seconds(g.pids) for g in gateways)


def run(args: argparse.Namespace, stack: contextlib.ExitStack, run_dir: Path) -> dict[str, Any]:
    from tests.support import Postgres

    cluster = None
    if args.admin_url:
        admin = args.admin_url
    else:
        log("starting a private Postgres cluster with pg_stat_statements")
        cluster = PrivateCluster(max_connections=max(100, args.instances * args.workers * 12 + 20))
        stack.callback(cluster.stop)
        admin = cluster.start().admin_url
    pg = Postgres()
    pg.admin_url = admin
    url = pg.create_database(migrate=True)
    if args.admin_url:
        stack.callback(pg.drop_database, url)
    log(f"seeding {args.tenants} tenants x {args.keys} keys, budgets and rate limits")
    keys = asyncio.run(seed(url, args.tenants, args.keys))
    nginx = Nginx(run_dir / "nginx")
    stack.callback(nginx.stop)
    nginx.start()
    gateways = []
    for i in range(args.instances):
        env = gateway_environment(nginx.json_url, url, run_dir / f"data-{i}", args.log_level)
        gateway = Gateway(run_dir, f"scale-{i}", env, args.workers)
        stack.callback(gateway.stop, 30)
        log(f"starting instance {i + 1}/{args.instances}: switchyard serve --workers {args.workers}")
        gateways.append(gateway.start(timeout=120))
        preflight(gateway.url, keys[0], request_bytes(False), False)
    out = asyncio.run(measured_window(args, url, cluster, gateways, keys))
    log("stopping the instances (the usage writers drain)")
    out["exit_codes"] = [g.stop(60) for g in gateways]
    out["rows_total"] = asyncio.run(wait_for_rows(url, 0))
    out["answered_total"] = len(gateways) + out["warmup"]["ok"] + out["load"]["ok"]
    out["postgres"] = {"private_cluster": cluster is not None, "version": _version(url)}
    return out


def _version(url: str) -> str:
    async def fetch() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        earlier = json.loads(args.report.read_text("utf-8"))
        earlier["derived"] = derive(earlier["run"])
        print(report(earlier))
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-scale-"))
    run_dir.chmod(0o755)
    results: dict[str, Any] = {"started_at": started.isoformat(timespec="seconds"),
                     "command": " ".join(["python -m benchmarks.scale_model", *(argv or sys.argv[1:])]),
                     "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    try:
        with contextlib.ExitStack() as stack:
            results["run"] = run(args, stack, run_dir)
    except KeyboardInterrupt:
        log("interrupted: everything the model started is stopped")
        return 130
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    results["derived"] = derive(results["run"])
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / f"scale-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", "utf-8")
    print(report(results))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
