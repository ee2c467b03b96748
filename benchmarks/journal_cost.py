"""What the usage journal costs: non-stream p50 at 1 connection, and requests/s and p50 at 32, with the
journal waiting for the fdatasync (production's default), for the write only (SWITCHYARD_USAGE_JOURNAL=write)
and off (SWITCHYARD_USAGE_JOURNAL=off), back to back in one run.

H8's pieces (benchmarks/perf*.py): a fresh migrated database with one tenant key, nginx answering the
canned Baseten completion, wrk. Each mode is `switchyard serve --workers N` with a checked preflight,
a warm-up, a 32-connection run and a 1-connection run, then a graceful stop; --rounds N repeats the
trio, alternating the order, and the comparison uses medians. Both modes must store one ledger
row per request answered (the journal changes when a row is safe, not whether it is written).

    .venv/bin/python -m benchmarks.journal_cost --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from benchmarks.perf import Bench
from benchmarks.perf import parse_args as perf_args
from benchmarks.perf_gateway import Gateway, gateway_environment, preflight
from benchmarks.perf_upstream import request_bytes

# sync: production's default (the answer waits for the fdatasync); write: the answer waits for the
# write into the kernel only; off: no journal (the comparison's baseline).
MODES = {"sync": {}, "write": {"SWITCHYARD_USAGE_JOURNAL": "write"}, "off": {"SWITCHYARD_USAGE_JOURNAL": "off"}}


def measure(bench: Bench, mode: str, round_number: int, args: argparse.Namespace) -> dict:
    tag = f"journal-{mode}-{round_number}"
    data_dir = bench.run_dir / f"data-{tag}"
    env = gateway_environment(bench.nginx.json_url, bench.db.url, data_dir, args.log_level, **MODES[mode])
    rows_before = bench.db.usage_rows()
    gateway = Gateway(bench.run_dir, tag, env, args.workers)
    bench.stack.callback(gateway.stop, 10)
    log(f"journal {mode} (round {round_number}): starting switchyard serve --workers {args.workers}")
    gateway.start()
    preflight(gateway.url, bench.db.key, request_bytes(stream=False), stream=False)
    sent, answered = 1, 1
    warm, _ = bench.load(gateway, "json", args.connections, args.warmup)
    sent, answered = sent + warm.sent, answered + warm.requests - warm.failed
    out: dict = {"round": round_number, "mode": mode}
    for label, conns, seconds in (("c32", args.connections, args.duration), ("c1", 1, args.single_duration)):
        log(f"journal {mode} (round {round_number}): {conns} connection(s), {seconds:g} s")
        result, out[label] = bench.load(gateway, "json", conns, seconds)
        if result.failed:
            raise RuntimeError(f"journal {mode}: {result.failed} requests failed")
        sent, answered = sent + result.sent, answered + result.requests - result.failed
    out["ledger"] = bench.finish_gateway(gateway, data_dir, sent, answered, rows_before)
    if out["ledger"]["lost"]:
        raise RuntimeError(f"journal {mode}: {out['ledger']['lost']} answered requests without a row")
    return out


def table(runs: list[dict]) -> str:
    header = ("| round | journal | req/s @32 | p50 ms @32 | p99 ms @32 | p50 ms @1 | p99 ms @1 | req/s @1 "
              "| gateway CPU ms/req @32 | ledger rows |")
    lines = [header, "|" + "---|" * 10]
    for run in runs:
        c32, c1 = run["c32"], run["c1"]
        lines.append(f"| {run['round']} | {run['mode']} | {c32['rps']:,.0f} | {c32['latency_ms']['p50']:.3f} "
                     f"| {c32['latency_ms']['p99']:.3f} | {c1['latency_ms']['p50']:.3f} "
                     f"| {c1['latency_ms']['p99']:.3f} | {c1['rps']:,.0f} | {c32['cpu_ms_per_request']:.3f} "
                     f"| {run['ledger']['rows']:,} |")
    return "\n".join(lines)


def difference(runs: list[dict]) -> str:
    def median(mode: str, label: str, key: str) -> float:
        values = [r[label]["rps"] if key == "rps" else r[label]["latency_ms"][key] for r in runs if r["mode"] == mode]
        return statistics.median(values)

    rounds = len(runs) // len(MODES)
    lines = []
    for mode in ("sync", "write"):
        p50_1 = median(mode, "c1", "p50") - median("off", "c1", "p50")
        p50_32 = median(mode, "c32", "p50") - median("off", "c32", "p50")
        rps = (median(mode, "c32", "rps") - median("off", "c32", "rps")) / median("off", "c32", "rps") * 100
        lines.append(f"journal {mode} vs off (medians of {rounds} round(s)): p50 at 1 connection {p50_1:+.3f} ms, "
                     f"p50 at 32 connections {p50_32:+.3f} ms, requests/s at 32 connections {rps:+.1f}%")
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[journal {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.journal_cost", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=10, help="seconds of each 32-connection run (default 10)")
    p.add_argument("--single-duration", type=float, default=8, help="seconds of each 1-connection run (default 8)")
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = p.parse_args(argv)
    if min(args.connections, args.workers, args.rounds) < 1 or min(args.duration, args.single_duration) <= 0:
        p.error("--connections, --workers and --rounds at least 1, durations positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(perf_args(["--connections", str(args.connections), "--workers", str(args.workers),
                             "--log-level", args.log_level]), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    load_before = os.getloadavg()
    try:
        bench.open()
        runs = []
        for number in range(args.rounds):
            order = tuple(MODES) if number % 2 == 0 else tuple(reversed(MODES))
            runs += [measure(bench, mode, number + 1, args) for mode in order]
        bench.failed = False
    finally:
        bench.close()
    print(f"\nUsage journal cost, non-stream, switchyard serve --workers {args.workers}, LOG_LEVEL={args.log_level}; "
          f"{os.cpu_count()} CPUs, load average before the run {load_before[0]:.2f}")
    print(table(runs))
    print(difference(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
