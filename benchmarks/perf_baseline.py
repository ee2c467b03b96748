"""The benchmark's bare pass-through phase: benchmarks/perf_bare.py's app started, checked and loaded
exactly like the gateway, so Switchyard's figures can be read as ratios to it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.perf_bare import CHAT, KEY_ENV, UPSTREAM_ENV
from benchmarks.perf_gateway import FAKE_BASETEN_KEY, Gateway, request
from benchmarks.perf_ttft import measure_ttft
from benchmarks.perf_upstream import request_bytes

if TYPE_CHECKING:
    from benchmarks.perf import Bench


class BareServer(Gateway):
    """The pass-through in its own process tree, started, probed and stopped like the gateway."""

    def command(self, host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "benchmarks.perf_bare", "--host", host, "--port", str(port),
                "--workers", str(self.workers)]


def bare_environment(upstream_url: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHYARD_", "BARE_"))}
    # granian's workers import this module by name: the repository root must be on their path.
    root = str(Path(__file__).resolve().parent.parent)
    env.update({UPSTREAM_ENV: upstream_url, KEY_ENV: key,
                "PYTHONPATH": os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))})
    return env


def run_bare(bench: Bench, mode: str, log: Callable[[str], None]) -> dict[str, Any]:
    """The same loads through a featureless Litestar + granian + aiohttp relay: Switchyard's floor."""
    a = bench.args
    server = BareServer(bench.run_dir, f"bare-{mode}", bare_environment(bench.upstream_url(mode), FAKE_BASETEN_KEY),
                        a.workers)
    bench.stack.callback(server.stop, 10)
    log(f"starting the bare pass-through for {mode}: granian --workers {a.workers}")
    server.start()
    bodies = bench.nginx.bodies if bench.nginx is not None else None
    if bodies is None:
        raise RuntimeError("nginx has no canned bodies: it was not started")
    expected = bodies.stream if mode == "stream" else bodies.completion
    status, _, content = request(server.url, "POST", CHAT, request_bytes(mode == "stream"),
                                 {"Content-Type": "application/json"})
    if status != 200 or content != expected:
        raise RuntimeError(f"the bare pass-through answered {status}, not the upstream's bytes: {content[:300]!r}")
    out: dict[str, Any] = {}
    try:
        log(f"bare {mode}: warm-up, {a.warmup:g} s")
        bench.load(server, mode, a.connections, a.warmup)
        for label, conns, seconds in (("c32", a.connections, a.duration), ("c1", 1, a.single_duration)):
            log(f"bare {mode}: {conns} connection(s), {seconds:g} s")
            result, out[label] = bench.load(server, mode, conns, seconds)
            if result.failed:
                raise RuntimeError(f"the bare pass-through failed {result.failed} requests: {result.errors}")
        if mode == "stream":
            log(f"bare stream: time to first byte, {a.ttft_requests} requests")
            out["ttft"] = measure_ttft(server.url + CHAT, request_bytes(stream=True), None, a.ttft_requests).as_json()
        if a.profile:
            _, out["profile"] = bench.profile(server, "bare", mode)
    finally:
        server.stop()
    return out
