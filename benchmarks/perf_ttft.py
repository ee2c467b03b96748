"""Time to first byte of a stream, one connection, one request at a time (wrk only sees whole responses)."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from dataclasses import dataclass

import aiohttp

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class TtftResult:
    requests: int  # requests sent, warm-up included (each one is a ledger row when sent to the gateway)
    measured: int
    errors: int
    ttft_ms: dict[str, float]
    total_ms: dict[str, float]

    def as_json(self) -> dict:
        return {"requests": self.requests, "measured": self.measured, "errors": self.errors,
                "ttft_ms": self.ttft_ms, "total_ms": self.total_ms}


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        # Nearest rank.
        index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
        return round(ordered[index], 4)

    return {"mean": round(statistics.fmean(ordered), 4), "p50": at(50), "p90": at(90), "p99": at(99),
            "max": round(ordered[-1], 4)}


async def _measure(url: str, body: bytes, key: str | None, count: int, warmup: int) -> TtftResult:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    ttft, total, errors, sent = [], [], 0, 0
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for index in range(warmup + count):
            sent += 1
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    first = await response.content.readany()
                    first_at = time.perf_counter()
                    rest = await response.content.read()
                    done_at = time.perf_counter()
                    ok = response.status == 200 and first.startswith(b"data: ") and (first + rest).endswith(DONE)
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if not ok:
                errors += 1
                continue
            if index >= warmup:
                ttft.append((first_at - start) * 1000)
                total.append((done_at - start) * 1000)
    return TtftResult(sent, len(ttft), errors, percentiles(ttft), percentiles(total))


def measure_ttft(url: str, body: bytes, key: str | None, count: int, warmup: int = 20) -> TtftResult:
    return asyncio.run(_measure(url, body, key, count, warmup))
