"""The gateway against the project's own stand-ins: streams at a model's pace, and the marketplaces.

nginx measures what the gateway costs; the stand-ins show it under traffic shaped like the real
thing: Baseten streams that take their time (a first token after TTFT_MS, then one every
INTER_TOKEN_MS), and the two marketplace routes (xpay over MCP, Orthogonal's Run API), which
nginx cannot play. The stand-ins run in their own process (`python -m service.simulator`), the
clients here, on aiohttp, a fixed number of requests in flight.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp

from benchmarks.perf_gateway import Gateway, gateway_environment
from benchmarks.perf_procs import cpu_seconds
from benchmarks.perf_ttft import percentiles

TTFT_MS = 50
INTER_TOKEN_MS = 5
STREAMS_IN_FLIGHT = 32
MARKET_IN_FLIGHT = 16
DONE = b"data: [DONE]\n\n"
MESSAGES = [{"role": "user", "content": "Write two sentences about rivers."}]
MARKET_MODEL = "openai/gpt-oss-120b"
CHAT = "/v1/chat/completions"


class StandinProcess:
    """`python -m service.simulator` in a child process, its URLs and keys read from its output."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.urls: dict[str, str] = {}
        self.keys: dict[str, str] = {}

    def start(self, timeout: float = 60.0) -> StandinProcess:
        self.process = subprocess.Popen([sys.executable, "-m", "service.simulator"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while len(self.urls) < 3 and time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the stand-ins exited before printing their URLs")
            name, url, *rest = line.split()
            if url == "not":
                raise RuntimeError(f"stand-in {name} is not available")
            self.urls[name] = url
            self.keys[name] = rest[0].removeprefix("key=")
        if len(self.urls) < 3:
            raise RuntimeError("the stand-ins did not start in time")
        return self

    def control_url(self, name: str, action: str) -> str:
        base = self.urls[name].split("/mcp")[0].split("/v1")[0].rstrip("/")
        return f"{base}/__control/{action}"

    def post_control(self, name: str, action: str, payload: dict) -> None:
        request = urllib.request.Request(self.control_url(name, action), data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def configure(self) -> None:
        # A model's pace on Baseten; the marketplaces' own limits and balances out of the way, so
        # what is measured is the gateway (its own xpay limiter is raised to match).
        self.post_control("baseten", "config", {"ttft_ms": TTFT_MS, "inter_token_ms": INTER_TOKEN_MS})
        for name in ("xpay", "orthogonal"):
            self.post_control(name, "config", {"rpm": 1_000_000, "concurrency": 1_000})
            self.post_control(name, "balance", {"balance": "1000000"})

    def upstreams(self) -> SimpleNamespace:
        return SimpleNamespace(api_keys=self.keys, baseten_url=self.urls["baseten"], xpay_url=self.urls["xpay"],
                               orthogonal_url=self.urls["orthogonal"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Phase:
    requests: int
    errors: int
    seconds: float
    ttft_ms: list[float]
    total_ms: list[float]

    def as_json(self) -> dict:
        return {"requests": self.requests, "errors": self.errors, "rps": round(self.requests / self.seconds, 1),
                "ttft_ms": percentiles(self.ttft_ms), "total_ms": percentiles(self.total_ms)}


async def _drive(url: str, body: bytes, key: str, in_flight: int, seconds: float, stream: bool) -> Phase:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    ttft: list[float] = []
    total: list[float] = []
    errors = 0
    clock = time.perf_counter

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        start = clock()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                if stream:
                    first = await response.content.readany()
                    first_at = clock()
                    whole = first + await response.content.read()
                    ok = response.status == 200 and whole.endswith(DONE)
                else:
                    first_at = None
                    ok = response.status == 200 and bool(await response.read())
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if not ok:
            errors += 1
            return
        total.append((clock() - start) * 1000)
        if first_at is not None:
            ttft.append((first_at - start) * 1000)

    async def loop(session: aiohttp.ClientSession, stop_at: float) -> int:
        sent = 0
        while clock() < stop_at:
            sent += 1
            await one(session)
        return sent

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = clock()
        sent = await asyncio.gather(*(loop(session, start + seconds) for _ in range(in_flight)))
        elapsed = clock() - start
    return Phase(sum(sent), errors, elapsed, ttft, total)


def drive(url: str, body: dict, key: str, in_flight: int, seconds: float) -> Phase:
    return asyncio.run(_drive(url, json.dumps(body).encode(), key, in_flight, seconds, bool(body.get("stream"))))


def stream_body(pinned: bool) -> dict:
    body = {"model": "openai/gpt-oss-120b", "messages": MESSAGES, "stream": True,
            "stream_options": {"include_usage": True}}
    if pinned:
        body["provider"] = {"only": ["baseten"]}
    return body


def market_body(front_end: str) -> dict:
    return {"model": MARKET_MODEL, "messages": MESSAGES, "provider": {"only": [front_end]}}


def summarise_standins(out: dict) -> dict:
    """Added time to first token and to the whole stream at the stand-in's pace."""
    direct, via = out["direct_streams"], out["gateway_streams"]

    def added(kind: str) -> float | None:
        a, b = via[kind].get("p50"), direct[kind].get("p50")
        return round(a - b, 3) if a is not None and b is not None else None

    return {"added_ttft_p50_ms": added("ttft_ms"), "added_total_p50_ms": added("total_ms"),
            "streams_per_s": via["rps"], "xpay_rps": out["xpay"]["rps"], "orthogonal_rps": out["orthogonal"]["rps"]}


def _ms(values: dict, key: str) -> str:
    value = values.get(key)
    return "-" if value is None else f"{value:.1f}"


def standins_table(out: dict) -> str:
    d, g, summary = out["direct_streams"], out["gateway_streams"], out["summary"]
    lines = [
        f"stand-ins: Baseten at {TTFT_MS} ms to the first token then {INTER_TOKEN_MS} ms a token, "
        f"{STREAMS_IN_FLIGHT} streams in flight; marketplaces non-stream, {MARKET_IN_FLIGHT} in flight",
        f"  streams/s direct {d['rps']:,.1f}, via gateway {g['rps']:,.1f} "
        f"(gateway CPU {g['gateway_cpu_ms_per_request']} ms a stream)",
        f"  TTFT p50 direct {_ms(d['ttft_ms'], 'p50')} ms, via gateway {_ms(g['ttft_ms'], 'p50')} ms "
        f"(p99 {_ms(g['ttft_ms'], 'p99')} ms): added {summary['added_ttft_p50_ms']:.1f} ms",
        f"  whole stream p50 direct {_ms(d['total_ms'], 'p50')} ms, via gateway {_ms(g['total_ms'], 'p50')} ms: "
        f"added {summary['added_total_p50_ms']:.1f} ms",
    ]
    for name in ("xpay", "orthogonal"):
        m = out[name]
        lines.append(f"  {name} route: {m['rps']:,.1f} req/s, p50 {_ms(m['total_ms'], 'p50')} ms, "
                     f"p99 {_ms(m['total_ms'], 'p99')} ms, errors {m['errors']}, "
                     f"gateway CPU {m['gateway_cpu_ms_per_request']} ms a request")
    ledger = out["ledger"]
    lines.append(f"  requests sent {ledger['requests_sent']:,}, usage rows {ledger['rows']:,} "
                 f"(by front end {ledger['rows_by_front_end']}), lost {ledger['lost']}")
    return "\n".join(lines)


def run_standins(db, run_dir, args, stack, log) -> dict:
    """The gateway (`switchyard serve`) over the stand-ins: paced streams direct and via the
    gateway, then the xpay and Orthogonal routes; the ledger must hold a row for every request."""
    log("starting the stand-ins (python -m service.simulator)")
    servers = StandinProcess().start()
    stack.callback(servers.stop)
    servers.configure()
    env = gateway_environment(None, db.url, run_dir / "data-standins", args.log_level,
                              upstreams=servers.upstreams(), XPAY_RPM="1000000", XPAY_CONCURRENCY="1000")
    gateway = Gateway(run_dir, "standins", env, args.workers)
    stack.callback(gateway.stop, 10)
    log(f"starting the gateway for the stand-ins: switchyard serve --workers {args.workers}")
    gateway.start()
    before = db.usage_rows("front_end")
    seconds = args.standin_duration
    out: dict = {}
    log(f"stand-ins: paced streams, {STREAMS_IN_FLIGHT} in flight, {seconds:g} s direct, then via the gateway")
    out["direct_streams"] = drive(servers.urls["baseten"] + "/chat/completions", stream_body(False),
                                  servers.keys["baseten"], STREAMS_IN_FLIGHT, seconds).as_json()
    phases = {"gateway_streams": (stream_body(True), STREAMS_IN_FLIGHT),
              "xpay": (market_body("xpay"), MARKET_IN_FLIGHT),
              "orthogonal": (market_body("orthogonal"), MARKET_IN_FLIGHT)}
    for name, (body, in_flight) in phases.items():
        log(f"stand-ins: {name} via the gateway, {in_flight} in flight, {seconds:g} s")
        pids = gateway.pids
        cpu_0 = cpu_seconds(pids)
        out[name] = drive(gateway.url + CHAT, body, db.key, in_flight, seconds).as_json()
        spent = cpu_seconds(pids) - cpu_0
        out[name]["gateway_cpu_ms_per_request"] = round(spent * 1000 / out[name]["requests"], 3) \
            if out[name]["requests"] else None
    code = gateway.stop()
    after = db.usage_rows("front_end")
    by_front_end = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    sent = sum(out[name]["requests"] for name in phases)
    rows = sum(by_front_end.values())
    out["ledger"] = {"requests_sent": sent, "rows": rows, "rows_by_front_end": by_front_end,
                     "lost": max(0, sent - rows), "gateway_exit_code": code}
    out["summary"] = summarise_standins(out)
    return out
