"""The scale model's client: an open-loop request rate over several gateways, and what Postgres was doing.

Open loop: request i leaves at start + i / rate whether or not earlier ones have been answered,
so a slow gateway does not lower the rate it is offered (wrk's closed loop would). Past
`max_in_flight` unanswered requests a due request is not sent but counted as shed: a machine that
cannot keep up shows as a shed count and a lower achieved rate, not as a pile of timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from benchmarks.perf_ttft import percentiles
from benchmarks.scale_postgres import activity, count_transaction


@dataclass
class LoadResult:
    offered_rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    late_ms_max: float = 0.0  # how far behind schedule the client fell at worst
    shed: int = 0  # due but not sent: max_in_flight requests were unanswered

    def as_json(self) -> dict[str, Any]:
        return {"offered_rate": self.offered_rate, "seconds": round(self.seconds, 2), "sent": self.sent,
                "ok": self.ok, "achieved_rate": round(self.ok / self.seconds, 1) if self.seconds else 0.0,
                "statuses": self.statuses, "latency_ms": percentiles(self.latency_ms),
                "client_late_ms_max": round(self.late_ms_max, 1), "shed": self.shed}


async def drive(urls: list[str], keys: list[str], body: bytes, rate: float, seconds: float, *,
                seed: int, max_in_flight: int = 256) -> LoadResult:
    result = LoadResult(rate, seconds)
    rng = random.Random(seed)  # noqa: S311 -- spreads load; nothing secret
    clock = time.perf_counter
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    tasks: set[asyncio.Task[None]] = set()

    async def one(session: aiohttp.ClientSession, url: str, key: str) -> None:
        begun = clock()
        try:
            async with session.post(url, data=body, headers={"Authorization": f"Bearer {key}",
                                                             "Content-Type": "application/json"}) as response:
                await response.read()
                status = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as err:
            status = type(err).__name__
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == "200":
            result.ok += 1
            result.latency_ms.append((clock() - begun) * 1000)

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        start = clock()
        total = int(rate * seconds)
        for i in range(total):
            due = start + i / rate
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                result.late_ms_max = max(result.late_ms_max, -wait * 1000)
            if len(tasks) >= max_in_flight:
                result.shed += 1
                continue
            task = asyncio.create_task(one(session, rng.choice(urls), rng.choice(keys)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            result.sent += 1
        if tasks:
            await asyncio.gather(*tasks)
        result.seconds = clock() - start
    return result


async def count_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM usage_events"))
    finally:
        await conn.close()
        count_transaction()


async def wait_for_rows(url: str, expected: int, within: float = 30.0) -> int:
    """The ledger's row count once it reaches `expected`, or as it stands when the time is up."""
    deadline = time.monotonic() + within
    while True:
        rows = await count_rows(url)
        if rows >= expected or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


async def sample_activity(url: str, stop: asyncio.Event, interval: float = 1.0) -> dict[str, Any]:
    """pg_stat_activity every `interval` until `stop`: how many backends were busy, and on what they waited."""
    samples = 0
    totals: dict[str, int] = {}
    peak_active = 0
    while not stop.is_set():
        now = await activity(url)
        samples += 1
        peak_active = max(peak_active, now["active"])
        for key, value in now.items():
            totals[key] = totals.get(key, 0) + value
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    mean = {k: round(v / samples, 3) for k, v in sorted(totals.items())} if samples else {}
    return {"samples": samples, "mean": mean, "peak_active": peak_active}
