"""CPU per request of the gateway's own code, in one process: the measurement to decide a hot-path change by.

`make bench` measures the whole server under wrk, where the gateway's workers, wrk, nginx and
Postgres share two cores; on this machine its figures for identical code move by 10-25% between
runs (an A/A run of `python -m benchmarks.perf --against HEAD`), more than most single changes
are worth. Here one process runs the gateway's ASGI app as `switchyard serve` builds it (journal,
ledger writer, metrics in multiprocess mode, one log line per request) and drives it directly,
`--concurrency` requests in flight, against nginx's canned Baseten answers and a real Postgres;
the figure is the process's CPU time (every thread: the journal, the ledger writer, the log and
metrics writers) divided by the requests answered. HTTP parsing (granian) is left out: it is the
same for every revision of the gateway.

    python -m benchmarks.hotpath                    # the current code, both modes
    python -m benchmarks.hotpath --against HEAD~1   # HEAD~1 and the current code, alternating

With `--against REF` the two revisions run in `--rounds` pairs in alternating order (REF from a
temporary git worktree) and the medians are compared; each run is its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHAT = "/v1/chat/completions"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hotpath", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=8000, help="measured requests per run (default 8000)")
    p.add_argument("--warmup", type=int, default=1500, help="requests before measuring (default 1500)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    p.add_argument("--only", choices=("json", "stream"), help="one mode only")
    p.add_argument("--against", metavar="REF", help="also run the gateway at git revision REF, alternating")
    p.add_argument("--rounds", type=int, default=5, help="runs per side (default 5)")
    p.add_argument("--profile", metavar="PATH", type=Path,
                   help="record the (single) run with py-spy into PATH, a speedscope file")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: one measured run, JSON out
    return p.parse_args(argv)


# ---- one measured run, in its own process ---------------------------------------------------------
async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]],
                                       asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    return task, inbox, outbox


FIRST_FAILURE: list[bytes] = []


async def _one(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": CHAT, "raw_path": CHAT.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    delivered = False
    gone = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif status != 200 and not FIRST_FAILURE:
            FIRST_FAILURE.append(message.get("body", b""))

    await app(scope, receive, send)
    gone.set()
    return status


async def _drive(app: Any, body: bytes, headers: list[tuple[bytes, bytes]], count: int, concurrency: int) -> int:
    remaining = count
    failed = 0

    async def worker() -> None:
        nonlocal remaining, failed
        while remaining > 0:
            remaining -= 1
            if await _one(app, body, headers) != 200:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) by thread name, from /proc; empty where there is no /proc."""
    import threading

    ticks = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            name = names.get(int(task.name), "other")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


async def _child(spec: dict[str, Any]) -> dict[str, Any]:
    from service.app import create_app
    from service.settings import load_settings

    settings = load_settings()
    threshold = getattr(settings, "gc_threshold", None)
    if threshold is not None:  # as the serving process's factory does, in revisions that tune the collector
        import gc

        gc.set_threshold(*threshold)
    app = create_app(settings)
    task, inbox, outbox = await _lifespan(app)
    if os.environ.get("HOTPATH_GC_THRESHOLD"):  # to try thresholds; "700,10,10" is CPython's
        import gc

        gc.set_threshold(*(int(x) for x in os.environ["HOTPATH_GC_THRESHOLD"].split(",")))
    headers = [(b"authorization", f"Bearer {spec['key']}".encode()), (b"content-type", b"application/json"),
               (b"content-length", str(len(spec["body"])).encode()), (b"host", b"127.0.0.1")]
    body = spec["body"].encode()
    failed = await _drive(app, body, headers, spec["warmup"], spec["concurrency"])
    threads0, cpu0, wall0 = _thread_cpu(), time.process_time(), time.perf_counter()
    profiler = None
    if os.environ.get("HOTPATH_CPROFILE"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    failed += await _drive(app, body, headers, spec["requests"], spec["concurrency"])
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(os.environ["HOTPATH_CPROFILE"])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    threads = {name: round((spent - threads0.get(name, 0.0)) * 1e6 / spec["requests"], 1)
               for name, spent in _thread_cpu().items() if spent - threads0.get(name, 0.0) > 0}
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()  # the shutdown (the ledger drains) before the process ends
    await task
    return {"cpu_us_per_request": cpu * 1e6 / spec["requests"], "requests_per_cpu_second": spec["requests"] / cpu,
            "wall_s": wall, "failed": failed, "us_per_request_by_thread": threads,
            "first_failure": FIRST_FAILURE[0].decode()[:500] if FIRST_FAILURE else None}


def child_main(path: str) -> int:
    spec = json.loads(Path(path).read_text())
    # The gateway's one log line per request goes where a shipper would read it, not to our terminal.
    devnull = os.open(os.devnull, os.O_WRONLY)
    if not os.environ.get("HOTPATH_LOGS"):
        os.dup2(devnull, 1)
    try:
        import uvloop

        result = uvloop.run(_child(spec))
    except ImportError:
        result = asyncio.run(_child(spec))
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


# ---- the driver: Postgres, nginx, the runs -----------------------------------------------------------
def _run_once(run_dir: Path, env: dict[str, str], spec: dict[str, Any], source: Path | None,
              profile: Path | None = None) -> dict[str, Any]:
    spec_path = run_dir / "spec.json"
    out = run_dir / "result.json"
    out.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({**spec, "out": str(out)}))
    child_env = {**env, "PYTHONPATH": str(source or ROOT)}
    # The driver module comes from the current checkout whatever the revision measured.
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)]
    if profile is not None:
        from benchmarks.perf_profile import py_spy_binary

        # Every thread, not only the GIL holder: the journal's and writers' threads are the process's CPU too.
        command = [py_spy_binary(None), "record", "--rate", "250", "--format", "speedscope", "--output",
                   str(profile), "--", *command]
    proc = subprocess.run(command,
                          env=child_env, cwd=str(source or ROOT), stderr=subprocess.PIPE, timeout=600, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"a measured run failed ({proc.returncode}): {proc.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    sys.path.insert(0, str(ROOT))
    from benchmarks import revisions
    from benchmarks.perf_gateway import Database, gateway_environment
    from benchmarks.perf_upstream import Nginx, request_bytes

    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-hotpath-"))
    run_dir.chmod(0o755)  # nginx's worker reads its canned files in here
    modes = [args.only] if args.only else ["json", "stream"]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        db = Database.create()
        stack.callback(db.drop)
        nginx = Nginx(run_dir / "nginx")
        stack.callback(nginx.stop)
        nginx.start()
        checkout = revisions.checkout(args.against, run_dir / "against", stack) if args.against else None
        for mode in modes:
            upstream = nginx.sse_url if mode == "stream" else nginx.json_url
            env = gateway_environment(upstream, db.url, run_dir / f"data-{mode}", "INFO",
                                      PROMETHEUS_MULTIPROC_DIR=str(run_dir / f"prom-{mode}"))
            (run_dir / f"prom-{mode}").mkdir(exist_ok=True)
            spec = {"key": db.key, "body": request_bytes(mode == "stream").decode(), "requests": args.requests,
                    "warmup": args.warmup, "concurrency": args.concurrency}

            def run(which: str, mode: str = mode, env: dict[str, str] = env, spec: dict[str, Any] = spec,
                    ) -> dict[str, Any]:
                profile = None
                if args.profile is not None and checkout is None:
                    profile = args.profile.with_name(f"{args.profile.stem}-{mode}{args.profile.suffix}")
                result = _run_once(run_dir, env, spec, checkout if which == "then" else None, profile)
                print(f"[hotpath {time.strftime('%H:%M:%S')}] {mode} {which}: "
                      f"{result['cpu_us_per_request']:.1f} us CPU/request "
                      f"(by thread: {result.get('us_per_request_by_thread')}), failed {result['failed']}"
                      + (f" (first: {result['first_failure']})" if result["failed"] else ""),
                      file=sys.stderr, flush=True)
                return result

            if checkout is None:
                sides: dict[str, list[dict[str, Any]]] = {"then": [], "now": [run("now")]}
            else:
                sides = revisions.run_pairs(args.rounds, run)
            results[mode] = sides
    print(report(results, args))
    return 0


def report(results: dict[str, dict[str, list[dict[str, Any]]]], args: argparse.Namespace) -> str:
    lines = [f"CPU per request in one gateway process ({args.requests:,} requests, {args.concurrency} in flight, "
             f"after {args.warmup:,}):"]
    for mode, sides in results.items():
        now = [r["cpu_us_per_request"] for r in sides["now"]]
        if not sides["then"]:
            lines.append(f"  {mode:7} {statistics.median(now):8.1f} us")
            continue
        then = [r["cpu_us_per_request"] for r in sides["then"]]
        a, b = statistics.median(then), statistics.median(now)
        lines.append(f"  {mode:7} {args.against}: {a:.1f} us (runs {_runs(then)})   now: {b:.1f} us "
                     f"(runs {_runs(now)})   now/then {b / a:.3f}")
    failed = sum(r["failed"] for sides in results.values() for rs in sides.values() for r in rs)
    lines.append(f"  failed requests, all runs: {failed}")
    return "\n".join(lines)


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


if __name__ == "__main__":
    raise SystemExit(main())
