"""The metrics as a real Prometheus sees them: every dashboard expression evaluates, the core
panels have data, and several worker processes add up to one set of counters."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import openai
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tests.conftest import LiveGateway
from tests.observability.prometheus_helpers import (
    PrometheusServer,
    dashboard_queries,
    has_positive,
    promtool_check_metrics,
    require_binary,
    samples,
    settled_scrape,
    total,
    values_of,
)
from tests.observability.served import ServedGateway
from tests.support import create_tenant_with_key, gateway_env

MODEL = "openai/gpt-oss-120b"
FALLBACK_MODEL = "zai-org/GLM-5.2"
PINNED = {"provider": {"only": ["baseten"]}}
HELLO = [{"role": "user", "content": "Say hello."}]
SQUARE_ROOT = {
    "type": "function",
    "function": {
        "name": "square_root",
        "description": "Calculates the square root of a number",
        "parameters": {
            "type": "object", "properties": {"number": {"type": "number"}}, "required": ["number"],
        },
    },
}
# The panels an operator opens first: each must show data after a little traffic.
CORE_PANELS = {
    ("switchyard-overview", "Requests / s"),
    ("switchyard-overview", "Requests by model"),
    ("switchyard-overview", "p95 latency"),
    ("switchyard-overview", "p95 time to first token"),
    ("switchyard-overview", "Request duration quantiles"),
    ("switchyard-overview", "Time to first token quantiles"),
    ("switchyard-overview", "Gateway overhead quantiles"),
    ("switchyard-overview", "Fallbacks"),
    ("switchyard-overview", "Upstream attempts by outcome"),
    ("switchyard-overview", "Tokens / s by direction"),
    ("switchyard-overview", "Running versions"),
    ("switchyard-cost", "Provider cost"),
    ("switchyard-cost", "Spend by model"),
    # "Spend by tenant" reads the ledger (Postgres) now: test_dashboards checks its numbers.
    ("switchyard-cost", "Cost per 1M tokens"),
    ("switchyard-metering", "Rows by fate"),
}


@pytest.fixture(scope="module")
def observed_gateway(standins, database_url):
    """Its own gateway, so the counters Prometheus sees come from this module's traffic only."""
    gw = LiveGateway(standins, database_url)
    yield gw
    gw.stop()


@pytest.fixture
def prometheus(observed_gateway, tmp_path):
    binary = require_binary("prometheus")
    server = PrometheusServer(binary, tmp_path, [urlparse(observed_gateway.url).netloc]).start()
    process = server.process
    try:
        yield server
    finally:
        server.stop()
    assert process.poll() is not None, "prometheus still running after stop()"


def _fault_once(standins, fault: str) -> None:
    r = httpx.post(standins.servers["baseten"].url + "/__control/faults",
                   json={"match": {"path": "/v1/chat/completions"}, "fault": fault, "times": 1})
    r.raise_for_status()


def _traffic(client: openai.OpenAI, standins) -> int:
    """Non-streamed, streamed, a tool call and a fallback; returns how many chat requests were sent."""
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=PINNED)
    assert completion.choices[0].message.content

    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                            stream_options={"include_usage": True}, extra_body=PINNED)
    assert any(chunk.usage for chunk in stream)

    tool = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[SQUARE_ROOT],
                                          tool_choice="required", extra_body=PINNED)
    assert tool.choices[0].finish_reason == "tool_calls"

    _fault_once(standins, "status:503:string")
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, extra_body={**PINNED, "models": [FALLBACK_MODEL]})
    assert raw.headers["x-switchyard-attempts"] == "2"
    assert raw.headers["x-switchyard-model"] == FALLBACK_MODEL
    return 4


def test_dashboards_evaluate_against_live_prometheus(observed_gateway, prometheus, standins, database_url):
    tenant = create_tenant_with_key(database_url, "prometheus-live")
    client = openai.OpenAI(base_url=observed_gateway.url + "/v1", api_key=tenant.key, max_retries=0,
                           timeout=20)
    requests = "sum(switchyard_requests_total)"
    try:
        prometheus.wait_for('up{job="switchyard"}', lambda v: v == [1.0])
        # Two rounds with a scrape between them, so every counter has two distinct samples and
        # rate() has something to say.
        sent = _traffic(client, standins)
        prometheus.wait_for(requests, lambda v: v == [float(sent)])
        sent += _traffic(client, standins)
        prometheus.wait_for(requests, lambda v: v == [float(sent)])
    finally:
        client.close()

    queries = dashboard_queries()
    assert len(queries) > 30
    missing = {key for key in CORE_PANELS if key not in {(q.dashboard, q.panel) for q in queries}}
    assert not missing, f"core panels not found in the dashboards: {missing}"
    empty_core = []
    for query in queries:
        values = values_of(prometheus.query(query.expr))  # raises on any evaluation error
        if (query.dashboard, query.panel) in CORE_PANELS and not has_positive(values):
            empty_core.append((query.panel, query.expr, values))
    assert not empty_core, empty_core

    # Spot checks that the series mean what the panels claim.
    by_direction = {r["metric"]["direction"]: float(r["value"][1])
                    for r in prometheus.query("sum by (direction) (switchyard_tokens_total)")}
    assert by_direction["prompt"] > 0 and by_direction["completion"] > 0
    fallbacks = values_of(prometheus.query("sum(switchyard_fallbacks_total)"))
    assert fallbacks == [2.0]
    failed = values_of(prometheus.query('sum(switchyard_upstream_attempts_total{outcome!="ok"})'))
    assert failed == [2.0]
    ttft_count = values_of(prometheus.query("sum(switchyard_time_to_first_token_seconds_count)"))
    assert ttft_count == [2.0]
    # A stream's overhead is Switchyard's part of its time to first token: some, never all of it.
    overhead = 'sum(switchyard_gateway_overhead_seconds_sum{stream="true"})'
    [stream_overhead] = values_of(prometheus.query(overhead))
    [ttft_total] = values_of(prometheus.query("sum(switchyard_time_to_first_token_seconds_sum)"))
    assert 0 < stream_overhead < ttft_total

    exposition = httpx.get(observed_gateway.url + "/metrics").content
    check = promtool_check_metrics(exposition)
    assert check.returncode == 0, check.stdout + check.stderr


def test_worker_processes_share_one_set_of_counters(standins, database_url, tmp_path):
    multiproc = Path(tempfile.mkdtemp(prefix="switchyard-prom-", dir=tmp_path))
    _stale_counter_file(multiproc)
    env = gateway_env(standins, database_url, tmp_path / "data", PROMETHEUS_MULTIPROC_DIR=str(multiproc),
                      LOG_LEVEL="INFO")
    tenant = create_tenant_with_key(database_url, "multi-worker")
    server = ServedGateway(env, workers=2, out_dir=tmp_path).start()
    try:
        server.wait_for_workers()

        def one(n: int) -> None:
            # A connection per request: a kept-alive one would stay with whichever worker took it.
            http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
            with openai.OpenAI(base_url=server.url + "/v1", api_key=tenant.key, max_retries=0, timeout=20,
                               http_client=http) as client:
                content = [{"role": "user", "content": f"Say hello to number {n}."}]
                answer = client.chat.completions.create(model=MODEL, messages=content, extra_body=PINNED)
                assert answer.choices

        sent = 0
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(20)))
            sent += 20
            # Which worker accepts a connection is the kernel's choice; on the rare run where one
            # took all 20, a few more give the other its share.
            while len(_workers_that_answered(multiproc)) < 2 and sent < 60:
                list(pool.map(one, range(sent, sent + 10)))
                sent += 10
        assert len(_workers_that_answered(multiproc)) == 2, "one worker took every request"

        text = settled_scrape(server.url + "/metrics", "switchyard_requests_total", sent)
        body = text.encode()
        assert total(text, "switchyard_requests_total") == sent
        answered = total(text, "switchyard_requests_total", status_class="2xx", stream="false", model=MODEL)
        assert answered == sent
        assert total(text, "switchyard_request_duration_seconds_count") == sent
        assert total(text, "switchyard_upstream_attempts_total", outcome="ok") == sent
        build = [(labels, value) for name, labels, value in samples(text) if name == "switchyard_build_info"]
        assert len(build) == 1 and build[0][1] == 1.0, build
        assert "pid" not in build[0][0]
    finally:
        returncode = server.stop(timeout=15)
    assert returncode == 0, server.stderr()
    check = promtool_check_metrics(body)
    assert check.returncode == 0, check.stdout + check.stderr


def _stale_counter_file(multiproc: Path) -> None:
    """What a previous run leaves behind: serve must wipe it, or its counts are added in."""
    stale = MmapedDict(str(multiproc / "counter_999999.db"))
    labels = ["front_end", "model", "status_class", "stream"]
    key = mmap_key("switchyard_requests", "switchyard_requests_total", labels,
                   ["baseten", MODEL, "2xx", "false"], "stale")
    stale.write_value(key, 1000.0, 0.0)
    stale.close()


def _workers_that_answered(multiproc: Path) -> set[str]:
    """Worker pids whose own counter file holds at least one answered request."""
    time.sleep(0.2)  # each worker writes its counts to its file every 50 ms
    pids = set()
    for path in multiproc.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        if any('"switchyard_requests_total"' in key and value > 0 for key, value, *_ in values):
            pids.add(path.stem.split("_")[-1])
    return pids

