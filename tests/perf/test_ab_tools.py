"""The A/B tools that decide hot-path changes: the perf report's before-and-after table and the
hotpath benchmark, run for real on a few hundred requests."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.hotpath import report
from benchmarks.perf_report import against_table

ROOT = Path(__file__).resolve().parents[2]


def _run(rps: float, cpu: float, lost: int = 0) -> dict:
    return {"c32": {"rps": rps, "latency_ms": {"p50": 8.0}, "cpu_ms_per_request": cpu},
            "c1": {"latency_ms": {"p50": 0.9}, "cpu_ms_per_request": cpu * 2}, "ledger": {"lost": lost}}


def test_the_before_and_after_table_compares_medians_and_sums_lost_rows() -> None:
    results = {"against": {"json": {"then": [_run(3000, 0.5), _run(3400, 0.48), _run(3100, 0.52)],
                                    "now": [_run(3900, 0.41), _run(3800, 0.40, lost=1), _run(4000, 0.42)]}}}
    text = against_table(results, "abc1234")
    rps = next(line for line in text.splitlines() if line.startswith("requests/s at 32 conn"))
    assert "3,100" in rps and "3,900" in rps and "1.258" in rps  # medians, and 3900 / 3100
    assert "13.3%" in rps  # the spread of the earlier side: 3400 / 3000 - 1
    lost = next(line for line in text.splitlines() if line.startswith("usage rows lost"))
    assert lost.split()[-2:] == ["0", "1"]


def test_the_hotpath_report_gives_medians_and_their_ratio() -> None:
    args = argparse.Namespace(requests=100, concurrency=4, warmup=10, against="HEAD~1")
    sides = {"then": [{"cpu_us_per_request": v, "failed": 0} for v in (300.0, 310.0, 290.0)],
             "now": [{"cpu_us_per_request": v, "failed": 0} for v in (250.0, 260.0, 255.0)]}
    text = report({"json": sides}, args)
    assert "HEAD~1: 300.0 us" in text and "now: 255.0 us" in text and "now/then 0.850" in text


@pytest.mark.skipif(not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
                    reason="nginx comes from scripts/bench-deps.sh")
def test_hotpath_runs_the_real_app_and_every_request_is_answered() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.hotpath", "--requests", "300", "--warmup", "50",
                          "--concurrency", "8"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "failed requests, all runs: 0" in run.stdout
    for mode in ("json", "stream"):
        line = next(line for line in run.stdout.splitlines() if line.strip().startswith(mode))
        assert float(line.split()[1]) > 0
