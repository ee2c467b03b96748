"""The benchmark's bare pass-through, its comparison with Switchyard, --quick and the profile summary."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from benchmarks.perf import QUICK, parse_args
from benchmarks.perf_baseline import BareServer, bare_environment
from benchmarks.perf_profile import py_spy_binary, recording, top_frames, top_table
from benchmarks.perf_report import evaluate, summarise, table
from benchmarks.perf_upstream import Nginx, request_bytes


def _figures(rps: float, p50_c1: float, cpu_ms: float) -> dict[str, Any]:
    return {"c32": {"rps": rps, "cpu_ms_per_request": cpu_ms, "cores_used": {"other": 0.1}},
            "c1": {"latency_ms": {"p50": p50_c1}}}


def test_switchyard_is_reported_against_the_bare_pass_through() -> None:
    direct = {"c32": {"rps": 40000.0}, "c1": {"latency_ms": {"p50": 0.05}}}
    gateway_json = {**_figures(3000.0, 1.2, 0.5), "ledger": {"lost": 0}}
    gateway_stream = {**_figures(700.0, 2.0, 2.0), "ledger": {"lost": 0}, "ttft": {"ttft_ms": {"p50": 1.9}}}
    results = {
        "direct": {"json": direct, "stream": {**direct, "ttft": {"ttft_ms": {"p50": 0.3}}}},
        "bare": {"json": _figures(4000.0, 1.0, 0.25),
                 "stream": {**_figures(1000.0, 1.2, 1.0), "ttft": {"ttft_ms": {"p50": 1.1}}}},
        "gateway": {"json": gateway_json, "stream": gateway_stream},
    }
    summary = summarise(results)
    assert summary["json"]["rps_vs_bare"] == pytest.approx(0.75)
    assert summary["json"]["p50_c1_above_bare_ms"] == pytest.approx(0.2)
    assert summary["json"]["cpu_vs_bare"] == pytest.approx(2.0)
    assert summary["stream"]["rps_vs_bare"] == pytest.approx(0.7)
    assert summary["stream"]["ttft_above_bare_ms"] == pytest.approx(0.8)
    verdicts = {t["target"]: t["result"] for t in evaluate(summary)}
    assert verdicts["non-stream requests/s at 32 conn, share of bare"] == "PASS"
    assert verdicts["non-stream p50 at 1 conn above bare"] == "PASS"
    assert verdicts["streams/s at 32 conn, share of bare"] == "FAIL"
    printed = table(summary, evaluate(summary))
    assert "Against the bare pass-through" in printed
    assert "(target >= 0.75)" in printed


def test_quick_shortens_only_what_was_not_given() -> None:
    args = parse_args(["--quick", "--duration", "9"])
    assert args.duration == 9
    assert args.single_duration == QUICK["single_duration"]
    assert args.standin_duration == 0
    assert parse_args([]).duration == 15


def test_py_spy_binary_implies_profile() -> None:
    assert parse_args(["--py-spy", "/usr/bin/py-spy"]).profile
    assert not parse_args([]).profile


def test_top_frames_of_a_speedscope_profile(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parent.parent.parent)
    frames = [{"name": "handle", "file": f"{root}/service/app.py", "line": 10},
              {"name": "dumps", "file": "/x/lib/python3.11/site-packages/orjson/__init__.py", "line": 1},
              {"name": "write", "file": "/x/lib/python3.11/json/encoder.py", "line": 5}]
    profile = {"shared": {"frames": frames}, "profiles": [
        {"type": "sampled", "unit": "seconds", "samples": [[0, 1], [0, 1], [0, 2], [0]], "weights": [1, 1, 1, 2]},
        {"type": "sampled", "unit": "seconds", "samples": [[], [0, 1]], "weights": [5, 2]},
    ]}
    path = tmp_path / "p.speedscope.json"
    path.write_text(json.dumps(profile))
    top = top_frames(path, n=2)
    assert (top["sampled"], top["unit"]) == (7, "seconds")  # the empty stack (an idle thread) counts for nothing
    assert top["self"] == [{"frame": "dumps (orjson/__init__.py:1)", "share": round(4 / 7, 4)},
                           {"frame": "handle (service/app.py:10)", "share": round(2 / 7, 4)}]
    assert top["total"][0] == {"frame": "handle (service/app.py:10)", "share": 1.0}
    assert "57.1%  dumps" in top_table(top, "t")


def test_py_spy_records_a_busy_python_process(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c", "def spin():\n    while True:\n        sum(range(1000))\nspin()"])
    try:
        path = tmp_path / "busy.speedscope.json"
        with recording(py_spy_binary(None), busy.pid, 1, path):
            pass
        top = top_frames(path)
    finally:
        busy.kill()
        busy.wait()
    assert top["unit"] == "seconds"
    assert top["sampled"] > 0.5
    assert {row["frame"].split(" ")[0] for row in top["total"]} >= {"<module>", "spin"}
    assert any(row["frame"].startswith("spin") for row in top["self"])


@pytest.mark.skipif(not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
                    reason="nginx comes from scripts/bench-deps.sh")
def test_bare_pass_through_answers_the_upstreams_bytes() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-bare-test-"))
    run_dir.chmod(0o755)
    nginx = Nginx(run_dir / "nginx")
    try:
        bodies = nginx.start().bodies
        if bodies is None:
            pytest.fail("nginx started without its canned bodies")
        for url, stream, expected in ((nginx.json_url, False, bodies.completion),
                                      (nginx.sse_url, True, bodies.stream)):
            server = BareServer(run_dir, f"bare-{stream}", bare_environment(url, "k"), 1).start()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                conn.request("POST", "/v1/chat/completions", body=request_bytes(stream),
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                assert response.status == 200
                assert response.getheader("content-type", "").startswith(
                    "text/event-stream" if stream else "application/json")
                assert response.read() == expected
                conn.close()
            finally:
                server.stop(10)
    finally:
        nginx.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
