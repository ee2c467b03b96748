"""The stand-in Baseten over real HTTP: shapes against the recordings, auth, validation, control."""

from __future__ import annotations

import json

import httpx
import pytest

from service.simulator.baseten import BasetenState
from tests.cassettes import (
    BAD_KEY,
    DEEPSEEK_STREAM,
    GLM_SCHEMA,
    GPT_OSS_TOOLS,
    WARMUP,
    interaction,
    recorded_chunks,
    response_body,
    sse_chunks,
    sse_payloads,
)
from tests.simulator.conftest import STANDIN_KEY

KEY = STANDIN_KEY
HI = [{"role": "user", "content": "hi"}]
GPT_OSS_HI = {"model": "openai/gpt-oss-120b", "messages": HI}
DEEPSEEK_HI = {"model": "deepseek-ai/DeepSeek-V4-Pro", "messages": HI}
AS_JSON = {"content-type": "application/json"}


@pytest.fixture
def client(served, state):
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=served[1].url + "/v1", headers=auth, timeout=10) as c:
        yield c


def recorded_request(name: str) -> dict:
    return json.loads(interaction(name)["request"]["body"])


def test_models_listing_is_exactly_data(client):
    response = client.get("/models")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    payload = response.json()
    assert list(payload) == ["data"]
    recorded = json.loads(response_body(WARMUP))["data"]
    assert payload["data"][: len(recorded)] == recorded
    keys = set(recorded[0])
    assert all(set(entry) - {"hugging_face_id"} == keys for entry in payload["data"])


def test_non_stream_body_matches_the_recorded_shape(client):
    response = client.post("/chat/completions", json=DEEPSEEK_HI)
    assert response.status_code == 200
    for header in ("x-baseten-request-id", "x-baseten-model-id", "x-baseten-accepted-at"):
        assert response.headers[header]
    body = response.json()
    assert list(body) == ["id", "choices", "created", "model", "object", "usage"]
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert list(body["choices"][0]) == ["index", "message", "finish_reason"]
    assert list(body["choices"][0]["message"]) == ["content", "role", "reasoning_content"]
    recorded_usage = recorded_chunks(DEEPSEEK_STREAM)[-1]["usage"]
    assert set(body["usage"]) == set(recorded_usage)
    for detail in ("prompt_tokens_details", "completion_tokens_details"):
        assert set(body["usage"][detail]) == set(recorded_usage[detail])


def test_deepseek_stream_matches_the_recording(client):
    request = recorded_request(DEEPSEEK_STREAM)
    response = client.post("/chat/completions", json=request)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.content.endswith(b"data: [DONE]\n\n")
    ours, theirs = sse_chunks(response.content), recorded_chunks(DEEPSEEK_STREAM)
    assert [list(c) for c in ours] == [list(theirs[0])] * len(ours)
    assert list(ours[1]["choices"][0]["delta"]) == list(theirs[1]["choices"][0]["delta"])
    recorded_delta = set(theirs[1]["choices"][0]["delta"])
    assert set(ours[0]["choices"][0]["delta"]) == recorded_delta - {"reasoning_content"}
    content = [c for c in ours if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert list(content[0]["choices"][0]["delta"]) == list(theirs[-2]["choices"][0]["delta"])
    assert ours[-1]["choices"] == [] and set(ours[-1]["usage"]) == set(theirs[-1]["usage"])
    assert ours[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is not None for c in ours)


def test_gpt_oss_tool_stream_matches_the_recording(client):
    request = recorded_request(GPT_OSS_TOOLS)
    ours = sse_chunks(client.post("/chat/completions", json=request).content)
    theirs = recorded_chunks(GPT_OSS_TOOLS)

    def tool_chunks(chunks):
        return [c for c in chunks if c["choices"] and c["choices"][0]["delta"]["tool_calls"]]

    mine, recorded = tool_chunks(ours), tool_chunks(theirs)
    assert mine[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == ""
    for a, b in ((mine[0], recorded[0]), (mine[1], recorded[1])):
        call_a, call_b = a["choices"][0]["delta"]["tool_calls"][0], b["choices"][0]["delta"]["tool_calls"][0]
        assert list(call_a) == list(call_b) and list(call_a["function"]) == list(call_b["function"])
        assert list(a["choices"][0]["delta"]) == list(b["choices"][0]["delta"])
    assert ours[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert list(ours[-2]["choices"][0]) == list(theirs[-2]["choices"][0])
    assert all(c["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0 for c in ours)
    arguments = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in mine)
    assert json.loads(arguments).keys() == {"number"}


def test_sparse_style_for_glm(client):
    request = {"model": "zai-org/GLM-5.2", "messages": [{"role": "user", "content": "hi"}], "stream": True,
               "chat_template_args": {"enable_thinking": True}}
    chunks = sse_chunks(client.post("/chat/completions", json=request).content)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert set(chunks[1]["choices"][0]["delta"]) == {"reasoning_content"}
    assert all(list(c) == ["id", "choices", "created", "model", "object", "usage"] for c in chunks)


def test_bad_key_body_is_byte_exact(client, state):
    recorded = response_body(BAD_KEY)
    for auth in ("Bearer wrong", "", f"Basic {KEY}"):
        headers = {"Authorization": auth}
        response = client.post("/chat/completions", json=recorded_request(BAD_KEY), headers=headers)
        assert response.status_code == 403 and response.content == recorded
    state.configure({"auth_status": 401})
    wrong = {"Authorization": "Bearer wrong"}
    response = client.post("/chat/completions", json=recorded_request(BAD_KEY), headers=wrong)
    assert response.status_code == 401 and response.content == recorded


def test_api_key_scheme_is_accepted(client):
    response = client.post(
        "/chat/completions",
        json=GPT_OSS_HI,
        headers={"Authorization": f"Api-Key {KEY}"},
    )
    assert response.status_code == 200


def test_exhausted_key_gets_402(client, state):
    state.configure({"exhausted_keys": [KEY]})
    response = client.post("/chat/completions", json=GPT_OSS_HI)
    assert response.status_code == 402 and list(response.json()) == ["error"]
    assert isinstance(response.json()["error"], str)


def test_empty_schema_name_is_the_recorded_bare_body(client):
    response = client.post("/chat/completions", json=recorded_request(GLM_SCHEMA))
    assert response.status_code == 400
    assert response.content == response_body(GLM_SCHEMA)
    assert response.headers["x-baseten-accepted-at"].isdigit()


def test_empty_schema_name_on_a_nulls_model_is_shape_two(client):
    request = {**recorded_request(GLM_SCHEMA), "model": "openai/gpt-oss-120b"}
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 400
    assert response.content.startswith(b'{\n\t"error": {\n\t\t"code": 400,')
    message = "Validation: `response_format.json_schema.name` cannot be empty"
    assert response.json() == {"error": {"code": 400, "message": message, "type": "Bad Request"}}


def test_unknown_model_is_403_or_404(client, state):
    request = {"model": "nope/nope", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 403 and response.content == response_body(BAD_KEY)
    state.configure({"unknown_model_status": 404})
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 404 and response.json() == {"error": "model not found"}


IMAGE = [
    {"type": "text", "text": "what is this"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
]
IMAGE_MESSAGES = [{"role": "user", "content": IMAGE}]


def test_multimodal_to_a_text_only_model_is_rejected(client):
    response = client.post("/chat/completions", json={**GPT_OSS_HI, "messages": IMAGE_MESSAGES})
    assert response.status_code == 400
    expected = "This model does not support multimodal (image/video/audio) inputs."
    assert response.json()["error"]["message"] == expected
    ok = client.post("/chat/completions", json={"model": "moonshotai/Kimi-K2.6", "messages": IMAGE_MESSAGES})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"n": 2},
        {"best_of": 3},
        {"max_tokens": 0},
        {"max_completion_tokens": -1},
        {"max_tokens": "ten"},
        {"max_tokens": 10**7},
        {"messages": []},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"tool_choice": "required"},
        {
            "tools": [{"type": "function", "function": {"name": "a"}}],
            "tool_choice": {"type": "function", "function": {"name": "b"}},
        },
        {"response_format": {"type": "yaml"}},
    ],
)
def test_invalid_requests_get_shape_two_400(client, extra):
    request = {**DEEPSEEK_HI, **extra}
    response = client.post("/chat/completions", json=request)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"code", "message", "type"}
    assert error["code"] == 400 and error["type"] == "Bad Request"


def test_missing_model_and_bad_json(client):
    assert client.post("/chat/completions", json={"messages": HI}).status_code == 400
    response = client.post("/chat/completions", content=b"{not json", headers=AS_JSON)
    assert response.status_code == 400 and "error" in response.json()


def test_reasoning_effort_policy(client, state):
    request = {**DEEPSEEK_HI, "reasoning_effort": "high"}
    assert client.post("/chat/completions", json=request).status_code == 200
    state.configure({"reasoning_effort_policy": "400"})
    assert client.post("/chat/completions", json=request).status_code == 400
    gpt = {**request, "model": "openai/gpt-oss-120b"}
    assert client.post("/chat/completions", json=gpt).status_code == 200
    assert client.post("/chat/completions", json={**gpt, "reasoning_effort": "ludicrous"}).status_code == 400


def test_body_over_the_cap_is_413(client, state):
    state.configure({"max_body_bytes": 2000})
    big = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = client.post("/chat/completions", json=big)
    assert response.status_code == 413 and isinstance(response.json()["error"], str)
    chunked = client.post("/chat/completions", content=iter([json.dumps(big).encode()]), headers=AS_JSON)
    assert chunked.status_code == 413


def test_stream_options_defaults_and_switches(client):
    request = {**DEEPSEEK_HI, "stream": True}
    default = sse_chunks(client.post("/chat/completions", json=request).content)
    assert default[-1]["choices"] == [] and all(c["usage"] for c in default)
    def run(options):
        response = client.post("/chat/completions", json={**request, "stream_options": options})
        return sse_chunks(response.content)

    no_usage = run({"include_usage": False})
    assert no_usage[-1]["choices"] and all(c["usage"] is None for c in no_usage)
    final_only = run({"continuous_usage_stats": False})
    assert final_only[-1]["usage"] and all(c["usage"] is None for c in final_only[:-1])


def test_max_completion_tokens_gives_length(client):
    request = {**DEEPSEEK_HI, "max_completion_tokens": 2}
    body = client.post("/chat/completions", json=request).json()
    assert body["choices"][0]["finish_reason"] == "length" and "content" not in body["choices"][0]["message"]
    assert body["usage"]["completion_tokens"] == 2


def test_fake_knobs_for_tool_calls_and_cache(client, state):
    state.configure({"fake_tool_call": True, "fake_cached": 4})
    parameters = {"type": "object", "properties": {"x": {"type": "string"}}}
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    request = {**GPT_OSS_HI, "tools": [tool]}
    body = client.post("/chat/completions", json=request).json()
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


def test_request_log_redacts_and_is_bounded(served, client, state):
    base = served[1].url
    client.post("/chat/completions", json=GPT_OSS_HI,
                headers={"X-Api-Key": "secret", "Api-Key": "secret2"})
    entries = httpx.get(base + "/__control/requests").json()["requests"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["method"] == "POST" and entry["path"] == "/v1/chat/completions"
    assert entry["body"]["model"] == "openai/gpt-oss-120b"
    for name in ("authorization", "x-api-key", "api-key"):
        assert entry["headers"][name] == "[redacted]"
    assert KEY not in json.dumps(entries) and "secret" not in json.dumps(entries)
    httpx.post(base + "/__control/config", json={"log_requests": False})
    client.post("/chat/completions", json=GPT_OSS_HI)
    assert len(httpx.get(base + "/__control/requests").json()["requests"]) == 1
    small = BasetenState(log_limit=3)
    for i in range(10):
        small.log.record("POST", "/v1/chat/completions", "", {}, {"i": i})
    assert [e["body"]["i"] for e in small.log.entries()] == [7, 8, 9]


def test_control_config_and_reset(served, state):
    base = served[1].url
    config = httpx.get(base + "/__control/config").json()
    assert config["api_key"] == "[redacted]" and config["ttft_ms"] == 0 and config["log_requests"] is True
    updated = httpx.post(base + "/__control/config", json={"ttft_ms": 5, "tokens_per_chunk": "3"}).json()
    assert updated["ttft_ms"] == 5 and updated["tokens_per_chunk"] == 3
    for bad in ({"nope": 1}, {"auth_status": 500}, {"tokens_per_chunk": 0}, {"fake_tool_call": "maybe"}, [1]):
        assert httpx.post(base + "/__control/config", json=bad).status_code == 400
    assert httpx.post(base + "/__control/faults", json={"fault": "status:500"}).status_code == 200
    assert len(httpx.get(base + "/__control/faults").json()["rules"]) == 1
    assert httpx.post(base + "/__control/reset").json() == {"ok": True}
    assert httpx.get(base + "/__control/config").json()["ttft_ms"] == 0
    assert httpx.get(base + "/__control/faults").json()["rules"] == []
    assert httpx.get(base + "/__control/nothing").status_code == 404


def test_unknown_path_and_method(served, client):
    assert client.get("/chat/completions").status_code == 405
    assert httpx.get(served[1].url + "/v2/whatever").status_code == 404


def test_recorded_sse_framing_is_what_we_emit(client):
    request = recorded_request(DEEPSEEK_STREAM)
    raw = client.post("/chat/completions", json=request).content
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and all(e.startswith(b"data: ") and b"\n" not in e for e in events[:-1])
    assert sse_payloads(raw)[-1] == b"[DONE]"
