"""What metering costs the gateway: non-stream requests/s and CPU per request with metering on and off.

One run, H8's pieces (benchmarks/perf*.py): a fresh migrated database with one tenant key,
nginx answering the canned Baseten completion, wrk at 32 connections. Then, back to back,
`switchyard serve --workers 2` twice against the same nginx port, each with a checked
preflight request, a warm-up, one measured wrk run, and a graceful stop (--rounds N repeats
the pair, alternating which goes first, and compares medians):

  on   production as it is: admission, the usage writer, Postgres.
  off  the same command with PYTHONPATH pointing at a benchmark-only directory whose
       sitecustomize.py (benchmarks/metering_off_sitecustomize.py, whose docstring lists
       exactly what it switches off) replaces UsageWriter.submit and Admitter.admit/settle
       with counting no-ops. Auth, routing, the upstream call and metrics stay on.

Checked afterwards: "on" stored one ledger row per request sent; "off" stored none, and its
no-ops saw every request (so the rows are missing because metering was off, not because
requests were). CPU is from /proc: the gateway's process tree (master and workers) and, apart,
the Postgres backends connected to the benchmark's database (the ledger's writes land there).

    .venv/bin/python -m benchmarks.metering_cost
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from benchmarks import metering_off_sitecustomize as off_patch
from benchmarks.perf import Bench
from benchmarks.perf import parse_args as perf_args
from benchmarks.perf_gateway import Gateway, gateway_environment, preflight
from benchmarks.perf_procs import cpu_seconds
from benchmarks.perf_upstream import request_bytes

MODES = ("on", "off")


def off_environment(run_dir: Path, tag: str) -> dict[str, str]:
    """PYTHONPATH with the patching sitecustomize first, and where its counts go."""
    site_dir = run_dir / f"metering-{tag}-site"
    counts_dir = run_dir / f"metering-{tag}-counts"
    site_dir.mkdir()
    counts_dir.mkdir()
    shutil.copyfile(off_patch.__file__, site_dir / "sitecustomize.py")
    inherited = os.environ.get("PYTHONPATH")
    path = str(site_dir) + (os.pathsep + inherited if inherited else "")
    return {"PYTHONPATH": path, off_patch.COUNTS_ENV: str(counts_dir)}


def backend_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds so far of each Postgres backend connected to the benchmark's database (the
    gateway's pool: the ledger's writes, admission, auth), read from /proc on this machine."""
    async def pids() -> list[int]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        finally:
            await conn.close()
        return [r["pid"] for r in rows]

    return {pid: cpu_seconds([pid]) for pid in asyncio.run(pids())}


def wait_for_counts(directory: str, sent: int, timeout: float = 15.0) -> dict[str, int]:
    """The no-ops' counts once they account for every request sent (each worker writes them about
    once a second, later on a loaded machine), or as they stand when the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        counts = off_patch.read_counts(directory)
        if counts["submitted"] >= sent or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def measure(bench: Bench, mode: str, round_number: int, args: argparse.Namespace) -> dict:
    tag = f"{mode}-{round_number}"
    data_dir = bench.run_dir / f"data-metering-{tag}"
    env = gateway_environment(bench.nginx.json_url, bench.db.url, data_dir, args.log_level)
    if mode == "off":
        env.update(off_environment(bench.run_dir, tag))
    rows_before = bench.db.usage_rows()
    gateway = Gateway(bench.run_dir, f"metering-{tag}", env, args.workers)
    bench.stack.callback(gateway.stop, 10)
    log(f"metering {mode} (round {round_number}): starting switchyard serve --workers {args.workers}")
    gateway.start()
    preflight(gateway.url, bench.db.key, request_bytes(stream=False), stream=False)
    sent, failed = 1, 0
    log(f"metering {mode} (round {round_number}): warm-up, {args.warmup:g} s")
    warm, _ = bench.load(gateway, "json", args.connections, args.warmup)
    log(f"metering {mode} (round {round_number}): {args.connections} connections, {args.duration:g} s")
    pg_before = backend_cpu(bench.db.url)
    result, figures = bench.load(gateway, "json", args.connections, args.duration)
    pg_spent = sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in backend_cpu(bench.db.url).items())
    elapsed = result.duration_s
    figures["postgres_cpu_s"] = round(pg_spent, 3)
    figures["cores_used"]["postgres"] = round(pg_spent / elapsed, 2)
    figures["cores_used"]["other"] = round(max(0.0, figures["cores_used"]["other"] - pg_spent / elapsed), 2)
    figures["postgres_cpu_ms_per_request"] = round(pg_spent * 1000 / result.requests, 4)
    sent, failed = sent + warm.sent + result.sent, failed + warm.failed + result.failed
    discarded = wait_for_counts(env[off_patch.COUNTS_ENV], sent) if mode == "off" else None
    ledger = bench.finish_gateway(gateway, data_dir, sent, rows_before)
    out = {"round": round_number, "mode": mode, "c32": figures, "failed_requests": failed, "ledger": ledger}
    if discarded is not None:
        out["discarded"] = discarded
    check(out)
    return out


def check(out: dict) -> None:
    """The run measured what it claims, or it stops here."""
    ledger, mode = out["ledger"], out["mode"]
    if out["failed_requests"]:
        raise RuntimeError(f"metering {mode}: {out['failed_requests']} requests failed")
    if mode == "on" and ledger["rows"] != ledger["requests_sent"]:
        raise RuntimeError(f"metering on: {ledger['rows']} ledger rows for "
                           f"{ledger['requests_sent']} requests sent")
    if mode == "off":
        if ledger["rows"] or ledger["spilled"]:
            raise RuntimeError(f"metering off still wrote {ledger['rows']} rows "
                               f"({ledger['spilled']} spilled): the sitecustomize patch did not take")
        seen = out["discarded"]["submitted"]
        if seen != ledger["requests_sent"]:
            raise RuntimeError(f"metering off: the no-op saw {seen} usage rows for {ledger['requests_sent']} "
                               "requests sent")


def table(runs: list[dict]) -> str:
    lines = ["| round | metering | req/s @32 | p50 ms | p99 ms | gateway CPU ms/req | Postgres CPU ms/req "
             "| gateway cores | Postgres cores | wrk cores | nginx cores | other cores | requests sent "
             "| ledger rows | rows discarded by no-op |",
             "|" + "---|" * 15]
    for run in runs:
        c, cores, ledger = run["c32"], run["c32"]["cores_used"], run["ledger"]
        discarded = run["discarded"]["submitted"] if "discarded" in run else None
        latency = c["latency_ms"]
        lines.append(f"| {run['round']} | {run['mode']} | {c['rps']:,.0f} "
                     f"| {latency['p50']:.2f} | {latency['p99']:.2f} "
                     f"| {c['cpu_ms_per_request']:.3f} | {c['postgres_cpu_ms_per_request']:.3f} "
                     f"| {cores['gateway']:.2f} | {cores['postgres']:.2f} | {cores['wrk']:.2f} "
                     f"| {cores['nginx']:.2f} | {cores['other']:.2f} | {ledger['requests_sent']:,} "
                     f"| {ledger['rows']:,} | {'-' if discarded is None else f'{discarded:,}'} |")
    return "\n".join(lines)


def difference(runs: list[dict]) -> str:
    """On against off; with several rounds, the median of each figure over the rounds."""
    def median_figures(mode: str) -> dict[str, float]:
        mine = [run["c32"] for run in runs if run["mode"] == mode]
        return {k: statistics.median(c[k] for c in mine)
                for k in ("rps", "cpu_ms_per_request", "postgres_cpu_ms_per_request")}

    on, off = median_figures("on"), median_figures("off")
    rps = (on["rps"] - off["rps"]) / off["rps"] * 100
    cpu = on["cpu_ms_per_request"] - off["cpu_ms_per_request"]
    share = cpu / on["cpu_ms_per_request"] * 100
    pg = on["postgres_cpu_ms_per_request"] - off["postgres_cpu_ms_per_request"]
    rounds = len(runs) // 2
    label = "metering on vs off" + (f", medians of {rounds} rounds" if rounds > 1 else "")
    return (f"{label}: {rps:+.1f}% requests/s; gateway {cpu:+.3f} CPU ms per request "
            f"({share:.1f}% of the metered gateway's CPU per request); Postgres {pg:+.3f} CPU ms per request")


def log(message: str) -> None:
    print(f"[metering {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.metering_cost", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=15, help="measured seconds per mode (default 15)")
    p.add_argument("--warmup", type=float, default=3, help="unmeasured seconds of load per mode (default 3)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="the gateway's LOG_LEVEL (default INFO, production's)")
    p.add_argument("--order", choices=("on-off", "off-on"), default="on-off", help="which mode runs first")
    p.add_argument("--rounds", type=int, default=1,
                   help="pairs of runs, the order alternating from pair to pair (default 1)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    args = p.parse_args(argv)
    if min(args.connections, args.workers, args.rounds) < 1 or args.duration <= 0 or args.warmup < 0:
        p.error("--connections, --workers and --rounds at least 1, --duration positive, "
                "--warmup not negative")
    return args


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(timezone.utc)
    # H8's Bench owns the database, nginx, wrk and every gateway, and releases them on any exit.
    bench = Bench(perf_args(["--connections", str(args.connections), "--workers", str(args.workers),
                             "--log-level", args.log_level]), started.strftime("%Y%m%dT%H%M%SZ"))
    load_before = os.getloadavg()
    try:
        log("starting Postgres (migrated database, one tenant key) and nginx (canned Baseten answers)")
        bench.open()
        first = MODES if args.order == "on-off" else tuple(reversed(MODES))
        runs = []
        for number in range(args.rounds):
            # Alternating which mode goes first cancels drift in the machine's other load.
            for mode in (first if number % 2 == 0 else tuple(reversed(first))):
                runs.append(measure(bench, mode, number + 1, args))
        bench.failed = False
    except KeyboardInterrupt:
        log("interrupted: stopping everything the benchmark started")
        bench.failed = False
        return 130
    finally:
        bench.close()
    print()
    print(f"Metering cost, non-stream, {args.connections} connections, {args.duration:g} s per mode, "
          f"switchyard serve --workers {args.workers}, LOG_LEVEL={args.log_level}; {os.cpu_count()} CPUs, "
          f"load average before the run {load_before[0]:.2f}")
    print(table(runs))
    print(difference(runs))
    if args.json is not None:
        args.json.write_text(json.dumps({"started_at": started.isoformat(timespec="seconds"),
                                         "load_average_before": load_before[0],
                                         "config": {k: str(v) for k, v in vars(args).items()},
                                         "runs": runs}, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
