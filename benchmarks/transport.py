"""Which HTTP client the gateway should call upstreams with: four ways, one process, one run.

Against nginx answering the canned non-stream Baseten completion (perf_upstream.py), in this
process on uvloop, each variant in turn runs a short warm-up, then 32 requests in flight for
--loaded seconds, then one at a time for --single seconds:

  a. httpx.AsyncClient with its default transport (httpcore's pool);
  b. httpx.AsyncClient over httpx-aiohttp's AiohttpTransport (service.upstreams.http's transport);
  c. an httpx.Request handed straight to AiohttpTransport.handle_async_request, then aread():
     what BasetenAdapter did until this benchmark's figures moved it to d;
  d. aiohttp.ClientSession directly: what BasetenAdapter does now.

Every answer is checked (status 200, the canned body's length); one wrong answer stops the run.
CPU is this process's own user+system time from /proc/self/stat, so it is the client's cost
alone: nginx runs in another process on the other core.

    .venv/bin/python -m benchmarks.transport
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.perf_procs import cpu_seconds
from benchmarks.perf_upstream import Nginx, request_bytes

CHAT = "/v1/chat/completions"
# What BasetenAdapter sends; the key is a placeholder (nginx checks nothing).
HEADERS = {"Authorization": "Api-Key bench-baseten-key", "Content-Type": "application/json"}
MAX_CONNECTIONS = 512  # service.upstreams.http's default pool size


@dataclass(frozen=True)
class Phase:
    concurrency: int
    requests: int
    seconds: float
    cpu_seconds: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cores(self) -> float:
        return self.cpu_seconds / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds * 1000 / self.requests

    def as_json(self) -> dict:
        out = asdict(self)
        out.update(rps=round(self.rps, 1), cores=round(self.cores, 3),
                   cpu_ms_per_request=round(self.cpu_ms_per_request, 4))
        return out


class WrongAnswer(RuntimeError):
    pass


def _check(variant: str, status: int, size: int, expected: int) -> None:
    if status != 200 or size != expected:
        raise WrongAnswer(f"{variant}: answer {status} with {size} bytes, expected 200 with {expected}")


class Variant(abc.ABC):
    """One way of sending the request; call() sends one and reads the whole answer."""

    key = ""
    title = ""

    def __init__(self, url: str, body: bytes, expected_size: int) -> None:
        self.url, self.body, self.expected = url, body, expected_size

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def call(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class HttpxDefault(Variant):
    key, title = "a", "httpx.AsyncClient, default transport"

    async def open(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        self.client = httpx.AsyncClient(limits=limits, trust_env=False, follow_redirects=False)

    async def call(self) -> None:
        response = await self.client.post(self.url, content=self.body, headers=HEADERS)
        _check(self.title, response.status_code, len(response.content), self.expected)

    async def close(self) -> None:
        await self.client.aclose()


class HttpxOverAiohttp(Variant):
    key, title = "b", "httpx.AsyncClient over AiohttpTransport"

    async def open(self) -> None:
        import httpx

        from service.upstreams.http import create_transport

        self.client = httpx.AsyncClient(transport=create_transport(max_connections=MAX_CONNECTIONS),
                                        trust_env=False, follow_redirects=False)

    async def call(self) -> None:
        response = await self.client.post(self.url, content=self.body, headers=HEADERS)
        _check(self.title, response.status_code, len(response.content), self.expected)

    async def close(self) -> None:
        await self.client.aclose()


class RequestToTransport(Variant):
    key, title = "c", "httpx.Request -> AiohttpTransport"

    async def open(self) -> None:
        import httpx

        from service.settings import Timeouts
        from service.upstreams.http import create_transport

        t = Timeouts()
        self._request_type = httpx.Request
        self.transport = create_transport(max_connections=MAX_CONNECTIONS)
        self.extensions = {"timeout": {"connect": t.connect, "read": t.first_byte, "write": t.connect,
                                       "pool": t.connect}}

    async def call(self) -> None:
        # Built per call, as BasetenAdapter did.
        request = self._request_type("POST", self.url, content=self.body, headers=HEADERS,
                                     extensions=self.extensions)
        response = await self.transport.handle_async_request(request)
        content = await response.aread()
        _check(self.title, response.status_code, len(content), self.expected)

    async def close(self) -> None:
        await self.transport.aclose()


class RawAiohttp(Variant):
    key, title = "d", "aiohttp.ClientSession (gateway now)"

    async def open(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                                             trust_env=False, auto_decompress=False)

    async def call(self) -> None:
        answer = self.session.post(self.url, data=self.body, headers=HEADERS, allow_redirects=False)
        async with answer as response:
            content = await response.read()
            _check(self.title, response.status, len(content), self.expected)

    async def close(self) -> None:
        await self.session.close()


VARIANTS: tuple[type[Variant], ...] = (HttpxDefault, HttpxOverAiohttp, RequestToTransport, RawAiohttp)


async def run_phase(call: Callable[[], Awaitable[None]], concurrency: int, seconds: float) -> Phase:
    """`concurrency` loops each sending one request after another until the time is up."""
    latencies: list[float] = []
    clock = time.perf_counter

    async def loop(stop_at: float) -> None:
        while clock() < stop_at:
            t0 = clock()
            await call()
            latencies.append(clock() - t0)

    me = [os.getpid()]
    cpu_0, start = cpu_seconds(me), clock()
    await asyncio.gather(*(loop(start + seconds) for _ in range(concurrency)))
    elapsed, cpu = clock() - start, cpu_seconds(me) - cpu_0
    ordered = sorted(latencies)
    return Phase(
        concurrency=concurrency,
        requests=len(latencies),
        seconds=elapsed,
        cpu_seconds=cpu,
        latency_mean_ms=statistics.fmean(latencies) * 1000,
        latency_p50_ms=ordered[len(ordered) // 2] * 1000,
        latency_p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    )


async def measure(variant: Variant, args: argparse.Namespace) -> dict[str, Phase]:
    await variant.open()
    try:
        # Opens the 32 connections and warms the code paths; not measured.
        await run_phase(variant.call, args.concurrency, args.warmup)
        loaded = await run_phase(variant.call, args.concurrency, args.loaded)
        single = await run_phase(variant.call, 1, args.single)
    finally:
        await variant.close()
    return {"loaded": loaded, "single": single}


async def run_all(url: str, body: bytes, expected: int,
                  args: argparse.Namespace) -> dict[str, dict[str, Phase]]:
    results = {}
    for cls in VARIANTS:
        variant = cls(url, body, expected)
        log(f"{variant.key}. {variant.title}: {args.concurrency} in flight {args.loaded:g} s, "
            f"then 1 at a time {args.single:g} s")
        results[variant.key] = await measure(variant, args)
    return results


def table(results: dict[str, dict[str, Phase]], concurrency: int) -> str:
    titles = {cls.key: cls.title for cls in VARIANTS}
    c = concurrency
    head = (f"| variant | req/s @{c} | client cores @{c} | client CPU ms/req @{c} "
            f"| mean ms @1 | p50 ms @1 | p99 ms @1 | client CPU ms/req @1 |")
    lines = [head, "|" + "---|" * 8]
    for key, phases in results.items():
        lo, one = phases["loaded"], phases["single"]
        lines.append(f"| {key}. {titles[key]} | {lo.rps:,.0f} | {lo.cores:.2f} | {lo.cpu_ms_per_request:.3f} "
                     f"| {one.latency_mean_ms:.3f} | {one.latency_p50_ms:.3f} | {one.latency_p99_ms:.3f} "
                     f"| {one.cpu_ms_per_request:.3f} |")
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[transport {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.transport", description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight in the loaded phase")
    p.add_argument("--loaded", type=float, default=8, help="seconds of the loaded phase per variant")
    p.add_argument("--single", type=float, default=5, help="seconds of the one-at-a-time phase per variant")
    p.add_argument("--warmup", type=float, default=1, help="unmeasured seconds of load before each variant")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    args = p.parse_args(argv)
    if args.concurrency < 1 or min(args.loaded, args.single) <= 0 or args.warmup < 0:
        p.error("--concurrency must be at least 1, --loaded and --single positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    import uvloop

    args = parse_args(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-transport-"))
    run_dir.chmod(0o755)  # nginx's unprivileged worker reads the canned files in here
    nginx = Nginx(run_dir / "nginx")
    try:
        log("starting nginx (canned Baseten answers)")
        nginx.start()
        url = nginx.json_url + CHAT
        expected = len(nginx.bodies.completion)
        load_before = os.getloadavg()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run_all(url, request_bytes(stream=False), expected, args))
    finally:
        nginx.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    print()
    print(f"HTTP client transports against nginx (canned {expected}-byte completion), one process on uvloop; "
          f"{os.cpu_count()} CPUs, load average before the run {load_before[0]:.2f}")
    print(table(results, args.concurrency))
    print("client cores = this process's CPU seconds (/proc/self/stat utime+stime) / wall seconds; "
          "client CPU ms/req = the same CPU / requests answered")
    if args.json is not None:
        import importlib.metadata

        packages = {name: importlib.metadata.version(name)
                    for name in ("httpx", "httpx-aiohttp", "aiohttp", "uvloop")}
        args.json.write_text(json.dumps({
            "python": platform.python_version(), "packages": packages, "cpus": os.cpu_count(),
            "load_average_before": load_before[0], "config": {k: str(v) for k, v in vars(args).items()},
            "results": {k: {p: ph.as_json() for p, ph in v.items()} for k, v in results.items()},
        }, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
