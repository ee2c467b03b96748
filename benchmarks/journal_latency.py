"""The usage journal alone, in one process: what `append()` costs the event loop and how long
`await durable()` takes, with 1 and 32 concurrent requests, in each wait mode, on this machine's disk.

The gateway benchmark (benchmarks/journal_cost.py) measures the same cost end to end, but on a shared
machine its p50 moves by milliseconds from run to run; this isolates the part the journal adds: the
wait for the disk (sync) or for the journal thread's write (write), and the encoding on the loop.

    .venv/bin/python -m benchmarks.journal_latency [--dir PATH] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from service.metering.journal import Journal, encode
from tests.metering.test_journal import event


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(directory: Path, mode: str, concurrency: int, requests: int) -> dict[str, float]:
    journal = Journal(directory, wait_for=mode)
    journal.start()
    waits: list[float] = []
    appends: list[float] = []
    row = event()

    async def client(n: int) -> None:
        for _ in range(n):
            t0 = time.perf_counter()
            journal.append(row)
            t1 = time.perf_counter()
            await journal.durable()
            waits.append(time.perf_counter() - t1)
            appends.append(t1 - t0)

    started = time.perf_counter()
    await asyncio.gather(*(client(requests // concurrency) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    syncs = journal.syncs
    await journal.close()
    return {"p50_wait_ms": _percentile(waits, 0.5) * 1000, "p99_wait_ms": _percentile(waits, 0.99) * 1000,
            "append_us": statistics.median(appends) * 1e6, "rows_per_s": len(waits) / elapsed,
            "rows_per_sync": len(waits) / max(syncs, 1)}


async def main_async(args: argparse.Namespace) -> None:
    row = event()
    t0 = time.perf_counter()
    for _ in range(10_000):
        encode(row)
    print(f"encode one row: {(time.perf_counter() - t0) / 10_000 * 1e6:.1f} us; "
          f"load average {os.getloadavg()[0]:.2f}; directory {args.dir}")
    print("| mode | concurrency | durable() p50 ms | p99 ms | append() us (on the loop) | rows/s | rows per sync |")
    print("|---|---|---|---|---|---|---|")
    for concurrency in (1, 32):
        for mode in ("sync", "write"):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                r = await _run(Path(tmp), mode, concurrency, args.requests)
            print(f"| {mode} | {concurrency} | {r['p50_wait_ms']:.3f} | {r['p99_wait_ms']:.3f} "
                  f"| {r['append_us']:.1f} | {r['rows_per_s']:,.0f} | {r['rows_per_sync']:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.journal_latency", description=__doc__.split("\n")[0])
    p.add_argument("--dir", type=Path, default=Path(".switchyard"), help="where the journal goes (its disk)")
    p.add_argument("--requests", type=int, default=3200)
    args = p.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
