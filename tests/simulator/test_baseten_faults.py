"""Every injected fault, by header and by control rule, plus the latency knobs, over real HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from service.simulator.control import BasetenConfig
from service.simulator.faults import Fault, FaultBook, FaultSpecError, parse_fault
from tests.cassettes import sse_chunks, sse_payloads
from tests.simulator.conftest import STANDIN_KEY

KEY = STANDIN_KEY
TABBED = b'{\n\t"error": {'
BARE_502 = {"message": "bad gateway", "type": "Bad Gateway", "code": 502}
CHAT = {"model": "deepseek-ai/DeepSeek-V4-Pro", "messages": [{"role": "user", "content": "hello there"}]}
STREAM = {**CHAT, "stream": True}


@pytest.fixture
def client(served, state):
    with httpx.Client(base_url=served[1].url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as c:
        yield c


def chat(client, body, fault=None, **kwargs):
    headers = {"X-Fake-Fault": fault} if fault else {}
    return client.post("/v1/chat/completions", json=body, headers=headers, **kwargs)


def read_raw(client, body, fault):
    """Bytes received before the stream ended, and the error that ended it (if any)."""
    received = b""
    headers = {"X-Fake-Fault": fault}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        try:
            for part in response.iter_raw():
                received += part
        except httpx.HTTPError as exc:
            return received, exc
    return received, None


def test_parse_fault_items_and_errors():
    fault = parse_fault("status:429, retry_after:7, delay_first_byte_ms:5,inter_chunk_ms:2")
    assert (fault.status, fault.shape, fault.retry_after) == (429, "string", "7")
    assert (fault.delay_first_byte_ms, fault.inter_chunk_ms) == (5, 2)
    assert parse_fault("status:500:bare").shape == "bare"
    assert parse_fault("timeout").timeout_after_chunks == 0
    assert parse_fault("timeout:4").timeout_after_chunks == 4
    assert parse_fault("malformed_chunk").malformed_chunk == 1
    assert parse_fault("finish_before_content").finish_before_content
    bad_specs = ("status:200", "status:500:weird", "drop_after_chunks", "drop_after_chunks:-1", "explode")
    for bad in bad_specs:
        with pytest.raises(FaultSpecError):
            parse_fault(bad)
    assert Fault(status=500).merged(Fault(drop_after_chunks=2)) == Fault(status=500, drop_after_chunks=2)


def test_fault_book_nth_times_and_matching():
    book = FaultBook()
    book.add({"match": {"path": "/v1/chat/*", "model": "m", "nth": 2}, "fault": "status:503"})
    book.add({"match": {"path": "/v1/chat/completions"}, "fault": "inter_chunk_ms:1", "times": 2})
    assert book.take("/v1/chat/completions", "m") == Fault(inter_chunk_ms=1)
    assert book.take("/v1/chat/completions", "m") == Fault(status=503, inter_chunk_ms=1)
    assert book.take("/v1/chat/completions", "m") is None
    assert book.take("/v1/models") is None
    with pytest.raises(FaultSpecError):
        book.add({"match": {"colour": "red"}, "fault": "status:500"})
    with pytest.raises(FaultSpecError):
        book.add({"fault": "status:500", "times": 0})


@pytest.mark.parametrize(
    ("spec", "status", "check"),
    [
        ("status:429", 429, lambda b: json.loads(b) == {"error": "rate limit exceeded"}),
        ("status:500:string", 500, lambda b: json.loads(b) == {"error": "internal server error"}),
        ("status:503:object", 503, lambda b: b.startswith(TABBED) and b'"Service Unavailable"' in b),
        ("status:502:bare", 502, lambda b: json.loads(b) == BARE_502),
        ("status:402", 402, lambda b: isinstance(json.loads(b)["error"], str)),
        ("status:504", 504, lambda b: json.loads(b) == {"error": "gateway timeout"}),
    ],
)
def test_status_faults(client, spec, status, check):
    response = chat(client, CHAT, spec)
    assert response.status_code == status and check(response.content)
    assert "retry-after" not in response.headers


def test_retry_after_knob(client):
    response = chat(client, CHAT, "status:429,retry_after:3")
    assert response.status_code == 429 and response.headers["retry-after"] == "3"


def test_bad_fault_header_is_rejected(client):
    response = chat(client, CHAT, "status:nope")
    assert response.status_code == 400 and "X-Fake-Fault" in response.json()["error"]


def test_delay_first_byte(client):
    started = time.perf_counter()
    assert chat(client, CHAT, "delay_first_byte_ms:300").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_inter_chunk_delay(client):
    started = time.perf_counter()
    response = chat(client, {**STREAM, "max_tokens": 6}, "inter_chunk_ms:40")
    elapsed = time.perf_counter() - started
    chunks = sse_chunks(response.content)
    assert elapsed >= 0.04 * (len(chunks) - 1) * 0.9
    assert sse_payloads(response.content)[-1] == b"[DONE]"


def test_drop_after_chunks_ends_the_connection_abruptly(client):
    received, error = read_raw(client, STREAM, "drop_after_chunks:3")
    assert isinstance(error, httpx.RemoteProtocolError)
    assert received.count(b"data: ") == 3 and b"[DONE]" not in received


def test_drop_after_chunks_on_a_non_stream_request_cuts_the_body(client):
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client, CHAT, "drop_after_chunks:0")


def test_error_event_after_chunks(client):
    received, error = read_raw(client, STREAM, "error_event_after_chunks:2")
    assert error is None
    payloads = sse_payloads(received)
    assert len(payloads) == 3 and b"[DONE]" not in payloads
    message = "internal server error during generation"
    assert json.loads(payloads[-1]) == {"error": {"message": message, "type": "server_error", "code": 500}}


def test_malformed_chunk(client):
    payloads = sse_payloads(chat(client, STREAM, "malformed_chunk:2").content)
    broken = []
    for index, payload in enumerate(payloads[:-1]):
        try:
            json.loads(payload)
        except json.JSONDecodeError:
            broken.append(index)
    assert broken == [2] and payloads[-1] == b"[DONE]"
    with pytest.raises(json.JSONDecodeError):
        json.loads(chat(client, CHAT, "malformed_chunk").content)


def test_finish_before_content(client):
    chunks = sse_chunks(chat(client, STREAM, "finish_before_content").content)
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["choices"][0]["delta"]["content"] and chunks[-2]["usage"] is None
    assert chunks[-1]["choices"] == []


def test_timeout_hangs_until_the_client_leaves(client):
    with pytest.raises(httpx.ReadTimeout):
        chat(client, CHAT, "timeout", timeout=httpx.Timeout(10, read=0.3))
    parts: list[bytes] = []

    def read_until_timeout() -> None:
        with client.stream("POST", "/v1/chat/completions", json=STREAM, headers={"X-Fake-Fault": "timeout:2"},
                           timeout=httpx.Timeout(10, read=0.3)) as response:
            parts.extend(response.iter_raw())

    with pytest.raises(httpx.ReadTimeout):
        read_until_timeout()
    assert b"".join(parts).count(b"data: ") == 2
    # The server is still healthy afterwards.
    assert chat(client, CHAT).status_code == 200


def test_faults_combine(client):
    received, error = read_raw(client, STREAM, "inter_chunk_ms:5,finish_before_content,drop_after_chunks:4")
    assert isinstance(error, httpx.RemoteProtocolError) and received.count(b"data: ") == 4


def test_control_rules_match_path_model_and_nth(client, served):
    base = served[1].url
    match = {"path": "/v1/chat/completions", "model": CHAT["model"], "nth": 2}
    rule = {"match": match, "fault": "status:503:object"}
    assert httpx.post(base + "/__control/faults", json=rule).status_code == 200
    other = {**CHAT, "model": "openai/gpt-oss-120b"}
    assert chat(client, other).status_code == 200  # other model: not counted
    assert chat(client, CHAT).status_code == 200  # first match
    assert chat(client, CHAT).status_code == 503  # second match fires
    assert chat(client, CHAT).status_code == 200  # fired once
    described = httpx.get(base + "/__control/faults").json()["rules"][0]
    assert described["seen"] == 3 and described["fired"] == 1
    times = {"match": {}, "fault": "status:429", "times": 2}
    httpx.post(base + "/__control/faults", json=times)
    assert [chat(client, CHAT).status_code for _ in range(3)] == [429, 429, 200]
    assert httpx.post(base + "/__control/faults", json={"fault": "bogus"}).status_code == 400
    assert httpx.delete(base + "/__control/faults").status_code == 200


def test_latency_knobs(client, state):
    state.configure({"ttft_ms": 150, "inter_token_ms": 5, "tokens_per_chunk": 4})
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=STREAM) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        first_at = time.perf_counter() - started
        rest = [line for line in lines if line.startswith("data: ")]
    assert first_at >= 0.15
    chunks = [json.loads(line[6:]) for line in [first, *rest] if line != "data: [DONE]"]
    reasoning = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("reasoning_content")]
    assert all(len(c["choices"][0]["delta"]["reasoning_content"].split()) <= 4 for c in reasoning)
    assert len(reasoning) >= 2 and len(reasoning[0]["choices"][0]["delta"]["reasoning_content"].split()) == 4
    state.configure({"total_latency_ms": 200})
    started = time.perf_counter()
    assert chat(client, CHAT).status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_latency_knobs_from_environment():
    env = {"SIM_TTFT_MS": "25", "SIM_TOKENS_PER_CHUNK": "2", "UNRELATED": "x"}
    config = BasetenConfig.from_env(env, api_key="k")
    assert (config.ttft_ms, config.tokens_per_chunk, config.inter_token_ms, config.api_key) == (25, 2, 0, "k")


def test_models_listing_takes_faults_too(client, served):
    assert client.get("/v1/models", headers={"X-Fake-Fault": "status:503"}).status_code == 503
    rule = {"match": {"path": "/v1/models"}, "fault": "status:500:object", "times": 1}
    httpx.post(served[1].url + "/__control/faults", json=rule)
    assert client.get("/v1/models").status_code == 500
    assert client.get("/v1/models").status_code == 200
