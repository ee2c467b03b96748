"""The benchmark's figures: derived numbers, targets with PASS/FAIL, the printed table, the JSON file."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024.0
# Postgres writing the ledger takes a little; more than this means something else ran meanwhile.
BUSY_WARNING_CORES = 0.3


@dataclass(frozen=True)
class Target:
    name: str
    path: tuple[str, ...]  # where the value sits in the summary
    op: str  # ">=", "<=" or "=="
    limit: float
    unit: str

    def check(self, value: float | None) -> bool | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.op == ">=":
            return value >= self.limit
        if self.op == "<=":
            return value <= self.limit
        return value == self.limit


TARGETS = (
    Target("non-stream requests/s at 32 connections", ("json", "rps_c32"), ">=", 2000, "req/s"),
    Target("non-stream added p50 at 1 connection", ("json", "added_p50_ms"), "<=", 1.0, "ms"),
    Target("streams/s at 32 connections", ("stream", "rps_c32"), ">=", 500, "streams/s"),
    Target("stream added TTFT p50 at 1 connection", ("stream", "added_ttft_p50_ms"), "<=", 2.0, "ms"),
    Target("usage rows lost (both runs)", ("rows_lost",), "==", 0, "rows"),
    # Issue 16: the share of the bare pass-through's throughput kept, and the latency added to it.
    Target("non-stream requests/s at 32 conn, share of bare", ("json", "rps_vs_bare"), ">=", 0.75, "x"),
    Target("non-stream p50 at 1 conn above bare", ("json", "p50_c1_above_bare_ms"), "<=", 0.25, "ms"),
    Target("streams/s at 32 conn, share of bare", ("stream", "rps_vs_bare"), ">=", 0.75, "x"),
)


def _get(data: dict, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of each mode from the raw phase results."""
    summary: dict[str, Any] = {}
    lost_total = 0
    for mode in ("json", "stream"):
        gw = _get(results, "gateway", mode)
        direct = _get(results, "direct", mode)
        if gw is None or direct is None:
            continue
        s = {
            "rps_c32": _get(gw, "c32", "rps"),
            "p50_c32_ms": _get(gw, "c32", "latency_ms", "p50"),
            "p99_c32_ms": _get(gw, "c32", "latency_ms", "p99"),
            "rps_c1": _get(gw, "c1", "rps"),
            "p50_c1_ms": _get(gw, "c1", "latency_ms", "p50"),
            "p99_c1_ms": _get(gw, "c1", "latency_ms", "p99"),
            "direct_rps_c32": _get(direct, "c32", "rps"),
            "direct_p50_c1_ms": _get(direct, "c1", "latency_ms", "p50"),
            "cpu_ms_per_request_c32": _get(gw, "c32", "cpu_ms_per_request"),
            "cpu_ms_per_request_c1": _get(gw, "c1", "cpu_ms_per_request"),
            "gateway_cores_c32": _get(gw, "c32", "cores_used", "gateway"),
            "wrk_cores_c32": _get(gw, "c32", "cores_used", "wrk"),
            "other_cores_c32": _get(gw, "c32", "cores_used", "other"),
            "peak_rss_mib": _get(gw, "peak_rss_mib"),
            "peak_pss_mib": _get(gw, "peak_pss_mib"),
            "requests_sent": _get(gw, "ledger", "requests_sent"),
            "usage_rows": _get(gw, "ledger", "rows"),
            "gone_before_upstream": _get(gw, "ledger", "gone_before_upstream"),
            "never_reached_gateway": _get(gw, "ledger", "never_reached_gateway"),
            "rows_lost": _get(gw, "ledger", "lost"),
            "failed_requests": _get(gw, "failed_requests"),
        }
        s["added_p50_ms"] = _diff(s["p50_c1_ms"], s["direct_p50_c1_ms"])
        if mode == "stream":
            s["ttft_p50_ms"] = _get(gw, "ttft", "ttft_ms", "p50")
            s["ttft_p99_ms"] = _get(gw, "ttft", "ttft_ms", "p99")
            s["direct_ttft_p50_ms"] = _get(direct, "ttft", "ttft_ms", "p50")
            s["added_ttft_p50_ms"] = _diff(s["ttft_p50_ms"], s["direct_ttft_p50_ms"])
        bare = _get(results, "bare", mode)
        if bare is not None:
            s["bare_rps_c32"] = _get(bare, "c32", "rps")
            s["rps_vs_bare"] = _ratio(s["rps_c32"], s["bare_rps_c32"])
            s["bare_p50_c1_ms"] = _get(bare, "c1", "latency_ms", "p50")
            s["p50_c1_above_bare_ms"] = _diff(s["p50_c1_ms"], s["bare_p50_c1_ms"])
            s["bare_cpu_ms_per_request_c32"] = _get(bare, "c32", "cpu_ms_per_request")
            s["cpu_vs_bare"] = _ratio(s["cpu_ms_per_request_c32"], s["bare_cpu_ms_per_request_c32"])
            s["bare_other_cores_c32"] = _get(bare, "c32", "cores_used", "other")
            if mode == "stream":
                s["bare_ttft_p50_ms"] = _get(bare, "ttft", "ttft_ms", "p50")
                s["ttft_above_bare_ms"] = _diff(s["ttft_p50_ms"], s["bare_ttft_p50_ms"])
        lost_total += s["rows_lost"] or 0
        summary[mode] = s
    summary["rows_lost"] = lost_total
    return summary


def evaluate(summary: dict) -> list[dict]:
    out = []
    for t in TARGETS:
        value = _get(summary, *t.path)
        ok = t.check(value)
        out.append({"target": t.name, "value": value, "op": t.op, "limit": t.limit, "unit": t.unit,
                    "result": "n/a" if ok is None else ("PASS" if ok else "FAIL")})
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# Switchyard against the bare pass-through: the figures issue 16 sets targets on.
BARE_ROWS = (
    ("requests/s at 32 conn: Switchyard", "rps_c32", 0),
    ("requests/s at 32 conn: bare pass-through", "bare_rps_c32", 0),
    ("  Switchyard / bare", "rps_vs_bare", 3),
    ("p50 at 1 conn (ms): Switchyard", "p50_c1_ms", 3),
    ("p50 at 1 conn (ms): bare pass-through", "bare_p50_c1_ms", 3),
    ("  Switchyard - bare (ms)", "p50_c1_above_bare_ms", 3),
    ("TTFT p50 (ms): bare pass-through", "bare_ttft_p50_ms", 3),
    ("  Switchyard - bare (ms)", "ttft_above_bare_ms", 3),
    ("CPU ms/request at 32 conn: bare", "bare_cpu_ms_per_request_c32", 3),
    ("  Switchyard / bare", "cpu_vs_bare", 2),
)

ROWS = (
    ("requests/s, 32 connections", "rps_c32", 0),
    ("p50 latency, 32 conn (ms)", "p50_c32_ms", 2),
    ("p99 latency, 32 conn (ms)", "p99_c32_ms", 2),
    ("requests/s, 1 connection", "rps_c1", 0),
    ("p50 latency, 1 conn (ms)", "p50_c1_ms", 3),
    ("p99 latency, 1 conn (ms)", "p99_c1_ms", 3),
    ("upstream direct p50, 1 conn (ms)", "direct_p50_c1_ms", 3),
    ("added p50, 1 conn (ms)", "added_p50_ms", 3),
    ("TTFT p50 via gateway (ms)", "ttft_p50_ms", 3),
    ("TTFT p99 via gateway (ms)", "ttft_p99_ms", 3),
    ("TTFT p50 direct (ms)", "direct_ttft_p50_ms", 3),
    ("added TTFT p50 (ms)", "added_ttft_p50_ms", 3),
    ("upstream direct requests/s, 32 conn", "direct_rps_c32", 0),
    ("gateway CPU ms/request, 32 conn", "cpu_ms_per_request_c32", 3),
    ("gateway CPU ms/request, 1 conn", "cpu_ms_per_request_c1", 3),
    ("cores used at 32 conn: gateway", "gateway_cores_c32", 2),
    ("cores used at 32 conn: wrk", "wrk_cores_c32", 2),
    ("cores used at 32 conn: Postgres + other", "other_cores_c32", 2),
    ("gateway peak RSS, all processes (MiB)", "peak_rss_mib", 1),
    ("gateway peak PSS, all processes (MiB)", "peak_pss_mib", 1),
    ("requests sent to the gateway", "requests_sent", 0),
    ("usage rows in the ledger", "usage_rows", 0),
    ("cut by the client before any upstream (no row due)", "gone_before_upstream", 0),
    ("cut by wrk at the run's end, never reached the gateway", "never_reached_gateway", 0),
    ("usage rows lost", "rows_lost", 0),
    ("failed requests (non-2xx, socket errors)", "failed_requests", 0),
)


def _rows(summary: dict[str, Any], rows: tuple[tuple[str, str, int], ...], width: int) -> list[str]:
    lines = [f"{'':<{width}}{'non-stream':>14}{'stream':>14}", "-" * (width + 28)]
    for label, key, digits in rows:
        a = _get(summary, "json", key)
        b = _get(summary, "stream", key)
        if a is None and b is None:
            continue
        lines.append(f"{label:<{width}}{_fmt(a, digits):>14}{_fmt(b, digits):>14}")
    return lines


def table(summary: dict, targets: list[dict]) -> str:
    width = max(len(label) for label, _, _ in ROWS) + 2
    lines = _rows(summary, ROWS, width)
    if any(_get(summary, mode, "bare_rps_c32") is not None for mode in ("json", "stream")):
        lines += ["", "Against the bare pass-through (same run, same upstream, same workers):"]
        lines += _rows(summary, BARE_ROWS, width)
    busy = max(max(_get(summary, mode, "other_cores_c32") or 0.0, _get(summary, mode, "bare_other_cores_c32") or 0.0)
               for mode in ("json", "stream"))
    if busy > BUSY_WARNING_CORES:
        lines += ["", f"WARNING: processes outside the benchmark (Postgres included) used up to {busy:.2f} cores",
                  "during a measured run; on a shared machine the gateway's figures are understated."]
    lines += ["", "Targets (reported, never fatal):"]
    for t in targets:
        limit = _fmt(t["limit"], 0 if float(t["limit"]).is_integer() else 2)
        lines.append(f"  {t['result']:<5} {t['target']}: {_fmt(t['value'], 3)} {t['unit']} "
                     f"(target {t['op']} {limit})")
    return "\n".join(lines)


def write_results(results: dict, directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"perf-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n", "utf-8")
    return path


def _version(command: list[str]) -> str | None:
    try:
        # Version probes of fixed tools (nginx -v, wrk -v); a failure only leaves the field empty.
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else None


def machine() -> dict[str, Any]:
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages = {}
    for name in ("granian", "litestar", "httpx", "httpx-aiohttp", "aiohttp", "uvloop", "asyncpg", "orjson"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "nginx": _version(["nginx", "-v"]),
        "wrk": _version(["wrk", "-v"]),
    }


def against_table(results: dict[str, Any], ref: str) -> str:
    """The current code against the gateway at `ref`: the median of each side's runs."""
    rows = [("requests/s at 32 conn", ("c32", "rps"), 0), ("p50 at 32 conn (ms)", ("c32", "latency_ms", "p50"), 3),
            ("p50 at 1 conn (ms)", ("c1", "latency_ms", "p50"), 3),
            ("CPU ms/request at 32 conn", ("c32", "cpu_ms_per_request"), 4),
            ("CPU ms/request at 1 conn", ("c1", "cpu_ms_per_request"), 4)]
    lines = [f"Against the gateway at {ref} (same run, pairs in alternating order, medians):",
             f"{'':40}{'mode':>6}{ref[:12]:>14}{'now':>12}{'now/then':>10}{'  spread then / now':>22}",
             "-" * 104]
    for mode, runs in results.get("against", {}).items():
        for label, path, digits in rows:
            then = [v for r in runs["then"] if isinstance(v := _get(r, *path), (int, float))]
            now = [v for r in runs["now"] if isinstance(v := _get(r, *path), (int, float))]
            if not then or not now:
                continue
            a, b = statistics.median(then), statistics.median(now)
            ratio = f"{b / a:.3f}" if a else "-"
            spread = f"{_spread(then)} / {_spread(now)}"
            lines.append(f"{label:40}{mode:>6}{_figure(a, digits):>14}{_figure(b, digits):>12}{ratio:>10}"
                         f"{spread:>22}")
        lost = [sum(_get(r, "ledger", "lost") or 0 for r in runs[side]) for side in ("then", "now")]
        lines.append(f"{'usage rows lost (all runs)':40}{mode:>6}{lost[0]:>14}{lost[1]:>12}")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    """max/min - 1 over one side's runs, as a percentage."""
    low = min(values)
    return f"{(max(values) / low - 1) * 100:.1f}%" if low else "-"


def _figure(value: object, digits: int) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else "-"
