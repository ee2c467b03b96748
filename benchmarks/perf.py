"""`make bench`: the gateway's throughput, added latency, CPU and memory per request, and lost usage rows.

One command, one run, every figure from that run:
  1. a fresh migrated database with one tenant key, and nginx serving canned Baseten answers
     (perf_upstream.py explains the two ports);
  2. for non-stream and then stream, each mode's three servers back to back (the machine's load
     drifts, so the figures compared are taken minutes apart at most):
     the upstream measured directly with wrk (1 and 32 connections) and, for streams, a
     time-to-first-byte client;
     the bare pass-through (benchmarks/perf_bare.py: Litestar + granian + aiohttp, the same
     workers, no features) under the same loads, the floor Switchyard is compared with;
     `switchyard serve --workers N` pointed at the matching
     nginx port (auth, metering, metrics on), a checked preflight request, a warm-up, wrk at 32
     connections and at 1, CPU and RSS of the gateway's processes, then a graceful stop (the usage
     writer drains) and the ledger counted against the requests sent;
  3. the table (Switchyard against the bare pass-through as ratios and differences), targets
     with PASS/FAIL, and benchmarks/results/perf-<timestamp>.json.

`--quick` shortens every phase and skips the stand-ins (a comparison in about two minutes);
`--only json|stream` picks one mode. `--profile` adds, after the measured runs, a loaded run with
py-spy on one worker of each server, writing speedscope files beside the results.

`--against REF` also runs the gateway as it was at git revision REF (a temporary worktree) in
`--rounds` pairs with the current code, in alternating order, and prints the medians side by side:
a change's before and after from one run.

`--soak MINUTES` instead holds load for that long and reports whether memory stays flat.
Every process the benchmark starts is stopped on exit, Ctrl+C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import revisions
from benchmarks.perf_baseline import run_bare
from benchmarks.perf_gateway import Database, Gateway, gateway_environment, preflight, scrape_counter, spilled_rows
from benchmarks.perf_procs import (
    TreeSampler,
    children_cpu_seconds,
    cpu_seconds,
    descendants,
    machine_busy_seconds,
    rss_kib,
)
from benchmarks.perf_profile import py_spy_binary, recording, top_frames, top_table
from benchmarks.perf_report import MIB, against_table, evaluate, machine, summarise, table, write_results
from benchmarks.perf_soak import run_soak, soak_table
from benchmarks.perf_standins import run_standins, standins_table
from benchmarks.perf_ttft import measure_ttft
from benchmarks.perf_upstream import Nginx, request_bytes
from benchmarks.perf_wrk import Wrk, WrkResult

CHAT = "/v1/chat/completions"
RESULTS_DIR = Path(__file__).parent / "results"
# --quick: every phase short, no stand-ins; only options left at their defaults are changed.
QUICK = {"duration": 6.0, "single_duration": 5.0, "direct_duration": 2.0, "warmup": 2.0, "ttft_requests": 150,
         "standin_duration": 0.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, default=32, help="connections of the loaded runs (default 32)")
    p.add_argument("--duration", type=float, default=15, help="seconds of each 32-connection gateway run")
    p.add_argument("--single-duration", type=float, default=10, help="seconds of each 1-connection gateway run")
    p.add_argument("--direct-duration", type=float, default=5, help="seconds of each direct upstream run")
    p.add_argument("--warmup", type=float, default=3, help="seconds of load before measuring a gateway")
    p.add_argument("--ttft-requests", type=int, default=500, help="streams timed for time to first byte")
    p.add_argument("--workers", type=int, default=2, help="gateway worker processes (default 2)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="the gateway's LOG_LEVEL; production's INFO logs a line per request (default)")
    p.add_argument("--only", choices=("json", "stream"), help="measure one mode only")
    p.add_argument("--standin-duration", type=float, default=8,
                   help="seconds of each stand-in phase (paced streams, xpay, Orthogonal); 0 skips them")
    p.add_argument("--soak", type=float, metavar="MINUTES", help="hold load for MINUTES and report RSS drift")
    p.add_argument("--soak-stream", action="store_true", help="soak with streams instead of non-stream")
    p.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--against", metavar="REF",
                   help="also measure the gateway at git revision REF in the same run (before and after)")
    p.add_argument("--rounds", type=int, default=3,
                   help="with --against: pairs of runs, in alternating order; medians are compared")
    p.add_argument("--quick", action="store_true", help="short phases, no stand-ins: one comparison in minutes")
    p.add_argument("--no-bare", dest="bare", action="store_false", help="skip the bare pass-through")
    p.add_argument("--profile", action="store_true", help="py-spy on one worker of each server during an extra "
                   "loaded run; speedscope files and the top self-time frames in the results")
    p.add_argument("--profile-seconds", type=float, default=10, help="seconds of each profiled run (default 10)")
    p.add_argument("--py-spy", metavar="BINARY", help="the py-spy to use for --profile (default: the venv's)")
    args = p.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    args.profile = args.profile or bool(args.py_spy)
    if args.connections < 1 or args.workers < 1 or args.ttft_requests < 1:
        p.error("--connections, --workers and --ttft-requests must be at least 1")
    if args.soak is not None and args.soak <= 0:
        p.error("--soak takes a positive number of minutes")
    return args


class Bench:
    """Owns every resource of one run; close() releases them whatever happened."""

    def __init__(self, args: argparse.Namespace, stamp: str) -> None:
        self.args = args
        self.stamp = stamp
        self.run_dir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
        # nginx's worker (an unprivileged user when started by root) reads the canned files in here.
        self.run_dir.chmod(0o755)
        self.stack = contextlib.ExitStack()
        self.db: Database | None = None
        self.nginx: Nginx | None = None
        self.wrk: Wrk | None = None
        self.files: dict[str, Path] = {}
        self.failed = True

    def open(self) -> Bench:
        log("starting Postgres (migrated database, one tenant key)")
        self.db = Database.create()
        self.stack.callback(self.db.drop)
        log("starting nginx (canned Baseten answers)")
        self.nginx = Nginx(self.run_dir / "nginx")
        self.stack.callback(self.nginx.stop)
        self.nginx.start()
        self.wrk = Wrk(self.run_dir)
        self.stack.callback(self.wrk.stop)
        self.files = {
            "json": self.wrk.write_file("json.body", request_bytes(stream=False)),
            "stream": self.wrk.write_file("stream.body", request_bytes(stream=True)),
            "key": self.wrk.write_file("key", self.db.key.encode("ascii")),
        }
        return self

    def close(self) -> None:
        self.stack.close()
        if self.failed:
            print(f"(run directory kept for its logs: {self.run_dir})", file=sys.stderr)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _nginx(self) -> Nginx:
        if self.nginx is None:
            raise RuntimeError("the benchmark is not open: nginx has not been started")
        return self.nginx

    def upstream_url(self, mode: str) -> str:
        nginx = self._nginx()
        return nginx.sse_url if mode == "stream" else nginx.json_url

    # ---- the upstream reached directly ------------------------------------------------------
    def direct(self, mode: str) -> dict:
        a, url = self.args, self.upstream_url(mode) + CHAT
        out = {}
        for label, conns in (("c1", 1), ("c32", a.connections)):
            log(f"direct {mode}: {conns} connection(s), {a.direct_duration:g} s")
            result = self.wrk.run(url, self.files[mode], None, connections=conns, seconds=a.direct_duration)
            if result.failed:
                raise RuntimeError(f"the upstream failed {result.failed} requests when reached directly: "
                                   f"{result.errors}")
            out[label] = result.as_json()
        if mode == "stream":
            log(f"direct stream: time to first byte, {a.ttft_requests} requests")
            out["ttft"] = measure_ttft(url, request_bytes(stream=True), None, a.ttft_requests).as_json()
        return out

    # ---- the gateway --------------------------------------------------------------------------
    def start_gateway(self, mode: str, source: Path | None = None) -> tuple[Gateway, Path]:
        name = mode if source is None else f"{mode}-against"
        data_dir = self.run_dir / f"data-{name}"
        env = gateway_environment(self.upstream_url(mode), self.db.url, data_dir, self.args.log_level)
        gateway = Gateway(self.run_dir, name, env, self.args.workers, source)
        self.stack.callback(gateway.stop, 10)
        at = f" at {self.args.against}" if source is not None else ""
        log(f"starting the gateway{at} for {mode}: switchyard serve --workers {self.args.workers}")
        gateway.start()
        preflight(gateway.url, self.db.key, request_bytes(mode == "stream"), mode == "stream")
        return gateway, data_dir

    def load(self, gateway: Gateway, mode: str, conns: int, seconds: float) -> tuple[WrkResult, dict]:
        """One wrk run, with the CPU the gateway's processes spent during it and where the
        machine's other cycles went (the load generator and nginx share the cores)."""
        pids, nginx_pids = gateway.pids, descendants(self.nginx.process.pid)
        gateway_0, nginx_0 = cpu_seconds(pids), cpu_seconds(nginx_pids)
        machine_0, wrk_0, start = machine_busy_seconds(), children_cpu_seconds(), time.monotonic()
        result = self.wrk.run(gateway.url + CHAT, self.files[mode], self.files["key"],
                              connections=conns, seconds=seconds)
        elapsed = time.monotonic() - start
        spent = cpu_seconds(pids) - gateway_0
        nginx = cpu_seconds(nginx_pids) - nginx_0
        wrk = children_cpu_seconds() - wrk_0
        machine = machine_busy_seconds() - machine_0
        figures = result.as_json()
        figures["gateway_cpu_s"] = round(spent, 3)
        figures["cpu_ms_per_request"] = round(spent * 1000 / result.requests, 4) if result.requests else None
        figures["cores_used"] = {
            "gateway": round(spent / elapsed, 2),
            "wrk": round(wrk / elapsed, 2),
            "nginx": round(nginx / elapsed, 2),
            # Postgres (the ledger's writes) and anything else running on the machine.
            "other": round(max(0.0, machine - spent - wrk - nginx) / elapsed, 2),
        }
        return result, figures

    def finish_gateway(self, gateway: Gateway, data_dir: Path, sent: int, answered: int,
                       rows_before: dict[str, int]) -> dict:
        """Checks the ledger against two counts that must each have a row per request: what the
        gateway says it handled (its request counter, less requests refused before any upstream)
        and what the clients received answers for. wrk's last requests, written as a run ends and
        cut with their connection, may never reach the gateway's handler: shown, not counted lost."""
        counted = _number(scrape_counter(gateway.url, "switchyard_requests_total"))
        refused = _number(scrape_counter(gateway.url, "switchyard_rejections_total"))
        gone = _number(scrape_counter(gateway.url, 'switchyard_rejections_total{reason="client_disconnected"}'))
        code = gateway.stop()
        rows_after = self.db.usage_rows()
        by_status = {k: v - rows_before.get(k, 0) for k, v in rows_after.items() if v - rows_before.get(k, 0)}
        rows = sum(by_status.values())
        handled = counted - refused
        return {
            "requests_sent": sent,
            "requests_answered": answered,
            "gateway_counted": counted,
            "gateway_handled": handled,
            "rows": rows,
            "rows_by_status": by_status,
            "spilled": spilled_rows(data_dir),
            "gone_before_upstream": gone,
            "never_reached_gateway": max(0, sent - counted),
            "lost": max(0, handled - rows, answered - rows),
            "extra": max(0, rows - handled),
            "gateway_exit_code": code,
        }

    def gateway(self, mode: str, source: Path | None = None) -> dict:
        a = self.args
        rows_before = self.db.usage_rows()
        gateway, data_dir = self.start_gateway(mode, source)
        sent, answered, failed = 1, 1, 0  # the preflight request
        sampler = TreeSampler(gateway.process.pid, interval=0.5).start()
        try:
            log(f"gateway {mode}: warm-up, {a.warmup:g} s")
            warm, _ = self.load(gateway, mode, a.connections, a.warmup)
            sent, answered, failed = sent + warm.sent, answered + warm.requests - warm.failed, failed + warm.failed
            out: dict = {}
            for label, conns, seconds in (("c32", a.connections, a.duration), ("c1", 1, a.single_duration)):
                log(f"gateway {mode}: {conns} connection(s), {seconds:g} s")
                result, out[label] = self.load(gateway, mode, conns, seconds)
                sent, failed = sent + result.sent, failed + result.failed
                answered += result.requests - result.failed
            if mode == "stream":
                log(f"gateway stream: time to first byte, {a.ttft_requests} requests")
                ttft = measure_ttft(gateway.url + CHAT, request_bytes(stream=True), self.db.key, a.ttft_requests)
                out["ttft"] = ttft.as_json()
                sent, failed = sent + ttft.requests, failed + ttft.errors
                answered += ttft.requests - ttft.errors
            if a.profile and source is None:
                result, out["profile"] = self.profile(gateway, "switchyard", mode)
                sent, failed = sent + result.sent, failed + result.failed
                answered += result.requests - result.failed
            hwm = rss_kib(gateway.pids)
        finally:
            sampler.stop()
        out["processes"] = len(hwm)
        out["peak_rss_mib"] = round(sampler.peak_kib / MIB, 1)
        out["peak_pss_mib"] = round(sampler.peak_pss_kib / MIB, 1)
        out["sum_of_process_peaks_mib"] = round(sum(peak for _, peak in hwm.values()) / MIB, 1)
        out["failed_requests"] = failed
        log(f"gateway {mode}: stopping (the usage writer drains), counting the ledger")
        out["ledger"] = self.finish_gateway(gateway, data_dir, sent, answered, rows_before)
        return out

    def profile(self, server: Gateway, name: str, mode: str) -> tuple[WrkResult, dict[str, Any]]:
        """An extra loaded run with py-spy on one worker; not part of the measured figures."""
        seconds = self.args.profile_seconds
        worker = next(pid for pid in server.pids if pid != server.process.pid)
        path = self.args.output_dir.resolve() / f"profile-{self.stamp}-{name}-{mode}.speedscope.json"
        log(f"{name} {mode}: py-spy on worker {worker}, {self.args.connections} connections, {seconds:g} s")
        with recording(py_spy_binary(self.args.py_spy), worker, seconds, path):
            result, figures = self.load(server, mode, self.args.connections, seconds + 1)
        figures["file"] = str(path)
        figures["top"] = top_frames(path)
        return result, figures

    # ---- the bare pass-through ----------------------------------------------------------------
    def bare(self, mode: str) -> dict[str, Any]:
        return run_bare(self, mode, log)

    # ---- the stand-ins: a model's pace, and the marketplace routes ------------------------------
    def standins(self) -> dict:
        return run_standins(self.db, self.run_dir, self.args, self.stack, log)


def _number(value: float) -> int:
    return int(value) if value == value else 0  # NaN: the scrape failed


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain `kill` cleans up like Ctrl+C does.
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    results: dict = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.perf", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    bench = Bench(args, stamp)
    try:
        bench.open()
        results["upstream"] = {
            "model": "openai/gpt-oss-120b",
            "completion_bytes": len(bench.nginx.bodies.completion),
            "stream_bytes": len(bench.nginx.bodies.stream),
            "stream_events": bench.nginx.bodies.stream_chunks,
            "routing": "two nginx server blocks: one port answers JSON, one answers SSE; "
                       "one gateway run per mode, each pointed at its port",
        }
        if args.soak is not None:
            soak = run_soak(bench, args.soak, args.soak_stream, log)
            results["soak"] = soak
            report = soak_table(soak)
        else:
            modes = [args.only] if args.only else ["json", "stream"]
            for part in ("direct", "bare", "gateway", "against"):
                results[part] = {}
            checkout = None
            if args.against:
                checkout = revisions.checkout(args.against, bench.run_dir / "against", bench.stack)
            for mode in modes:
                results["direct"][mode] = bench.direct(mode)
                if args.bare:
                    results["bare"][mode] = bench.bare(mode)
                if checkout is None:
                    results["gateway"][mode] = bench.gateway(mode)
                    continue
                runs = revisions.run_pairs(args.rounds, lambda which, mode=mode, at=checkout:
                                           bench.gateway(mode, at if which == "then" else None))
                results["against"][mode] = runs
                # The bare comparison and the targets read the current code's median run.
                ranked = sorted(runs["now"], key=lambda r: r.get("c32", {}).get("rps") or 0.0)
                results["gateway"][mode] = ranked[len(ranked) // 2]
            if not args.only and args.standin_duration > 0:
                results["standins"] = bench.standins()
            results["summary"] = summarise(results)
            results["targets"] = evaluate(results["summary"])
            report = table(results["summary"], results["targets"])
            if args.against:
                report += "\n\n" + against_table(results, args.against)
            if "standins" in results:
                report += "\n\n" + standins_table(results["standins"])
            for part in ("bare", "gateway"):
                for mode, figures in results[part].items():
                    if "profile" in figures:
                        report += "\n\n" + top_table(figures["profile"]["top"], f"py-spy, {part} {mode} worker "
                                                       f"({figures['profile']['file']})")
        bench.failed = False
    except KeyboardInterrupt:
        log("interrupted: stopping everything the benchmark started")
        bench.failed = False  # nothing to investigate: the run directory goes too
        return 130
    finally:
        bench.close()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    path = write_results(results, args.output_dir, stamp)
    print()
    print(f"Switchyard performance, {results['started_at']}: {args.workers} gateway workers, "
          f"{results['machine']['cpus']} CPUs ({results['machine']['cpu_model']})")
    print(report)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
