"""The benchmark's own parts: canned upstream, nginx config, /proc parsing, wrk output, the report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from benchmarks.perf_procs import (
    Sample,
    cpu_seconds,
    descendants,
    machine_busy_seconds,
    parse_stat,
    parse_status_kib,
    rss_kib,
    slope_per_minute,
)
from benchmarks.perf_report import TARGETS, evaluate, summarise, table
from benchmarks.perf_ttft import percentiles
from benchmarks.perf_upstream import Nginx, canned_bodies, render_config, request_body
from benchmarks.perf_wrk import Wrk, parse_output


def test_canned_answers_are_baseten_shaped():
    bodies = canned_bodies()
    completion = json.loads(bodies.completion)
    assert completion["object"] == "chat.completion"
    assert completion["model"] == request_body(False)["model"]
    assert completion["usage"]["completion_tokens"] > 0
    events = bodies.stream.split(b"\n\n")
    assert bodies.stream.endswith(b"data: [DONE]\n\n")
    data = [json.loads(e[6:]) for e in events if e.startswith(b"data: {")]
    assert len(data) == bodies.stream_chunks
    assert 15 <= bodies.stream_chunks <= 25
    assert data[-1]["choices"] == []
    assert data[-1]["usage"]["completion_tokens"] == completion["usage"]["completion_tokens"]
    assert canned_bodies() == bodies  # fixed id and timestamp: identical bytes on every run


def test_nginx_config_fills_every_placeholder(tmp_path):
    text = render_config(tmp_path, 1111, 2222)
    assert "listen 127.0.0.1:1111" in text and "listen 127.0.0.1:2222" in text
    assert f"alias {tmp_path}/canned/;" in text
    assert "@" not in text


def test_stat_parsing_survives_odd_process_names():
    ticks = os.sysconf("SC_CLK_TCK")
    line = f"42 (a (b) c) S 7 42 42 0 -1 4194560 1 0 0 0 {3 * ticks} {ticks} 0 0 20 0 1 0 5 0 0"
    ppid, seconds = parse_stat(line)
    assert ppid == 7
    assert seconds == pytest.approx(4.0)


def test_status_parsing():
    text = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert parse_status_kib(text, "VmRSS") == 1024
    assert parse_status_kib(text, "VmHWM") == 2048
    assert parse_status_kib("Name:\tzombie\n", "VmRSS") == 0


def test_own_process_is_measured():
    me = os.getpid()
    assert me in descendants(me)
    assert cpu_seconds([me]) > 0
    current, peak = rss_kib([me])[me]
    assert 0 < current <= peak
    assert machine_busy_seconds() > 0


def test_slope_of_rss():
    rising = [Sample(t, 1000 + 2 * t) for t in range(0, 60, 10)]  # 2 KiB a second
    assert slope_per_minute(rising) == pytest.approx(120.0)
    assert slope_per_minute([Sample(0, 5), Sample(10, 5)]) == 0.0
    assert slope_per_minute([Sample(0, 5)]) == 0.0


def test_wrk_result_line():
    out = ("Running 1s test\n"
           'WRK_RESULT {"requests":100,"sent":101,"duration_us":2000000,"bytes":5000,'
           '"errors":{"connect":0,"read":0,"write":0,"status":2,"timeout":0},'
           '"latency_us":{"mean":1500.0,"max":9000,"p50":1200,"p90":2000,"p99":8000}}\n')
    result = parse_output(out, 32)
    assert result.rps == 50.0
    assert result.sent == 101
    assert result.failed == 2
    assert result.latency_ms["p50"] == 1.2
    with pytest.raises(ValueError, match="wrk printed no result line"):
        parse_output("wrk: connection refused\n", 1)


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    p = percentiles(values)
    assert (p["p50"], p["p90"], p["p99"], p["max"]) == (50.0, 90.0, 99.0, 100.0)
    assert percentiles([]) == {}


def _phase(rps: float, p50: float, lost: int = 0) -> dict:
    return {
        "c32": {"rps": rps, "latency_ms": {"p50": 10.0, "p99": 30.0}, "cpu_ms_per_request": 0.5,
                "cores_used": {"gateway": 1.5, "wrk": 0.1, "other": 0.05}},
        "c1": {"rps": 900.0, "latency_ms": {"p50": p50, "p99": 2.0}, "cpu_ms_per_request": 0.6},
        "peak_rss_mib": 200.0,
        "failed_requests": 0,
        "ledger": {"requests_sent": 1000, "rows": 1000 - lost, "lost": lost},
    }


def test_summary_and_targets():
    direct = {"c32": {"rps": 40000.0}, "c1": {"latency_ms": {"p50": 0.05}}}
    results = {
        "direct": {"json": direct, "stream": {**direct, "ttft": {"ttft_ms": {"p50": 0.3}}}},
        "gateway": {"json": _phase(2500.0, 0.8),
                    "stream": {**_phase(400.0, 3.0, lost=2), "ttft": {"ttft_ms": {"p50": 2.8, "p99": 5.0}}}},
    }
    summary = summarise(results)
    assert summary["json"]["added_p50_ms"] == pytest.approx(0.75)
    assert summary["stream"]["added_ttft_p50_ms"] == pytest.approx(2.5)
    assert summary["rows_lost"] == 2
    verdicts = {t["target"]: t["result"] for t in evaluate(summary)}
    assert list(verdicts.values()) == ["PASS", "PASS", "FAIL", "FAIL", "FAIL", "n/a", "n/a", "n/a"]
    assert len(verdicts) == len(TARGETS)
    printed = table(summary, evaluate(summary))
    assert "2,500" in printed and "FAIL  streams/s at 32 connections" in printed
    assert "WARNING" not in printed


def test_targets_without_figures_are_not_judged():
    verdicts = evaluate({"rows_lost": 0})
    assert [v["result"] for v in verdicts] == ["n/a", "n/a", "n/a", "n/a", "PASS", "n/a", "n/a", "n/a"]


@pytest.mark.skipif(not (shutil.which("wrk") and (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))),
                    reason="nginx and wrk come from scripts/bench-deps.sh")
def test_nginx_and_wrk_end_to_end():
    run_dir = Path(tempfile.mkdtemp(prefix="switchyard-bench-test-"))
    run_dir.chmod(0o755)
    nginx = Nginx(run_dir / "nginx")
    try:
        nginx.start()  # checks both ports answer their canned body byte for byte
        wrk = Wrk(run_dir)
        body = wrk.write_file("body", json.dumps(request_body(True)).encode())
        result = wrk.run(nginx.sse_url + "/v1/chat/completions", body, None, connections=4, seconds=1)
        assert result.requests > 100
        assert result.failed == 0
        assert result.sent - result.requests <= 4  # at most one request in flight per connection at the end
        assert result.bytes >= result.requests * len(nginx.bodies.stream)
    finally:
        nginx.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    assert nginx.process.poll() is not None


def test_pss_counts_a_process_and_is_at_most_its_rss():
    import os

    from benchmarks.perf_procs import pss_kib, rss_kib

    pid = os.getpid()
    rss, _ = rss_kib([pid])[pid]
    assert 0 < pss_kib([pid]) <= rss


def test_the_standin_phase_drives_paced_streams_against_a_real_standin_process():
    from benchmarks.perf_standins import INTER_TOKEN_MS, StandinProcess, drive, stream_body, summarise_standins

    servers = StandinProcess().start()
    try:
        servers.configure()
        phase = drive(servers.urls["baseten"] + "/chat/completions", stream_body(False), servers.keys["baseten"],
                      in_flight=4, seconds=1.0).as_json()
    finally:
        servers.stop()
    assert phase["requests"] >= 4 and phase["errors"] == 0
    # Paced: the first token waits TTFT_MS, the rest INTER_TOKEN_MS each.
    assert phase["ttft_ms"]["p50"] >= 45 and phase["total_ms"]["p50"] > phase["ttft_ms"]["p50"] + INTER_TOKEN_MS
    fake = {"direct_streams": phase, "gateway_streams": phase, "xpay": phase, "orthogonal": phase}
    assert summarise_standins(fake)["added_ttft_p50_ms"] == 0
