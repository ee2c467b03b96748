"""`--soak MINUTES`: load held for that long, and whether the gateway's memory stays flat."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from benchmarks.perf_procs import TreeSampler, slope_per_minute
from benchmarks.perf_report import MIB, _fmt

if TYPE_CHECKING:
    from benchmarks.perf import Bench

FLAT_LIMIT_MIB_PER_HOUR = 30.0


def run_soak(bench: Bench, minutes: float, stream: bool, log: Callable[[str], None]) -> dict:
    """Load held for `minutes`; the gateway's RSS sampled every 10 s and its trend over the second half."""
    mode = "stream" if stream else "json"
    rows_before = bench.db.usage_rows()
    gateway, data_dir = bench.start_gateway(mode)
    sampler = TreeSampler(gateway.process.pid, interval=10.0).start()
    try:
        log(f"soak: {bench.args.connections} connections for {minutes:g} min, RSS every 10 s")
        result, figures = bench.load(gateway, mode, bench.args.connections, minutes * 60)
    finally:
        samples = sampler.stop()
    half = samples[len(samples) // 2:]
    slope = slope_per_minute(samples) * 60 / MIB
    slope_half = slope_per_minute(half) * 60 / MIB
    return {
        "minutes": minutes,
        "stream": stream,
        "connections": bench.args.connections,
        "rps": round(result.rps, 1),
        "load": figures,
        "samples": [{"t_s": round(s.t, 1), "rss_mib": round(s.rss_kib / MIB, 2)} for s in samples],
        "rss_start_mib": round(samples[0].rss_kib / MIB, 1) if samples else None,
        "rss_end_mib": round(samples[-1].rss_kib / MIB, 1) if samples else None,
        "peak_rss_mib": round(sampler.peak_kib / MIB, 1),
        "peak_pss_mib": round(sampler.peak_pss_kib / MIB, 1),
        "slope_mib_per_hour": round(slope, 2),
        "slope_second_half_mib_per_hour": round(slope_half, 2),
        "flat_limit_mib_per_hour": FLAT_LIMIT_MIB_PER_HOUR,
        "flat": "PASS" if slope_half <= FLAT_LIMIT_MIB_PER_HOUR else "FAIL",
        "ledger": bench.finish_gateway(gateway, data_dir, 1 + result.sent, 1 + result.requests - result.failed,
                                      rows_before),
    }


def soak_table(soak: dict) -> str:
    lines = [
        (f"soak: {soak['minutes']} min, {'stream' if soak['stream'] else 'non-stream'}, "
        f"{soak['connections']} connections, {_fmt(soak['rps'], 0)} req/s"),
        (f"  RSS start {_fmt(soak['rss_start_mib'], 1)} MiB, end {_fmt(soak['rss_end_mib'], 1)} MiB, "
        f"peak {_fmt(soak['peak_rss_mib'], 1)} MiB (PSS {_fmt(soak.get('peak_pss_mib'), 1)} MiB)"),
        (f"  RSS slope, whole run: {_fmt(soak['slope_mib_per_hour'], 2)} MiB/hour; "
        f"second half: {_fmt(soak['slope_second_half_mib_per_hour'], 2)} MiB/hour"),
        f"  {soak['flat']}: memory flat (second-half slope <= {soak['flat_limit_mib_per_hour']:g} MiB/hour)",
        (f"  requests sent {_fmt(soak['ledger']['requests_sent'])}, usage rows {_fmt(soak['ledger']['rows'])}, "
        f"lost {_fmt(soak['ledger']['lost'])}"),
    ]
    return "\n".join(lines)
