"""The gateway driven by the official openai client, with the stand-in Baseten behind it."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import openai
import pytest

from tests.support import wait_for_rows

MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Say hello."}]
SQUARE_ROOT = {
    "type": "function",
    "function": {
        "name": "square_root",
        "description": "Calculates the square root of a number",
        "parameters": {"type": "object", "properties": {"number": {"type": "number"}}, "required": ["number"]},
    },
}


def _fault(standins, fault: str, times: int = 1, model: str | None = None) -> None:
    match = {"path": "/v1/chat/completions"}
    if model:
        match["model"] = model
    r = httpx.post(standins.servers["baseten"].url + "/__control/faults",
                   json={"match": match, "fault": fault, "times": times})
    r.raise_for_status()


def _route_pinned(extra: dict | None = None) -> dict:
    return {"provider": {"only": ["baseten"]}, **(extra or {})}


def test_non_stream_answer_carries_cost_headers_and_ledger_row(client, gateway, tenant):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, extra_body=_route_pinned())
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    expected = (Decimal(usage.prompt_tokens) * Decimal("0.10")
                + Decimal(usage.completion_tokens) * Decimal("0.50")) / 1_000_000
    assert Decimal(raw.headers["x-switchyard-cost-usd"]) == expected
    assert usage.model_extra["cost"] == pytest.approx(float(expected))
    assert raw.headers["x-switchyard-route"] == f"baseten:{MODEL}"
    assert raw.headers["x-switchyard-model"] == MODEL
    assert raw.headers["x-switchyard-attempts"] == "1"
    request_id = raw.headers["x-request-id"]
    import asyncio

    rows = asyncio.run(wait_for_rows(gateway.database_url, "SELECT * FROM usage_events WHERE request_id = $1", 1,
                                     request_id))
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok" and row["stream"] is False
    assert row["prompt_tokens"] == usage.prompt_tokens and row["completion_tokens"] == usage.completion_tokens
    assert row["provider_cost_usd"] == expected
    assert row["tenant_id"] == tenant.tenant_id
    assert row["cost_source"] == "computed"


def test_stream_relays_content_and_final_usage_with_cost(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}, extra_body=_route_pinned()
    )
    content, usage_chunks, finish = [], [], None
    for chunk in stream:
        if chunk.choices:
            content.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
            assert chunk.usage is None  # usage only on the final chunk, as OpenAI does it
        elif chunk.usage:
            usage_chunks.append(chunk.usage)
    assert "".join(content)
    assert finish == "stop"
    assert len(usage_chunks) == 1
    assert usage_chunks[0].model_extra["cost"] > 0


def test_stream_without_include_usage_hides_usage(client):
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True, extra_body=_route_pinned())
    chunks = list(stream)
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_reasoning_content_is_relayed(client):
    completion = client.chat.completions.create(model="deepseek-ai/DeepSeek-V4-Pro", messages=HELLO,
                                                extra_body=_route_pinned())
    assert completion.choices[0].message.model_extra.get("reasoning_content")
    stream = client.chat.completions.create(model="deepseek-ai/DeepSeek-V4-Pro", messages=HELLO, stream=True,
                                            extra_body=_route_pinned())
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in stream if c.choices)
    assert reasoning


def test_opt_in_reasoning_through_extra_body(client):
    completion = client.chat.completions.create(
        model="zai-org/GLM-4.7", messages=HELLO,
        extra_body={"chat_template_args": {"enable_thinking": True}, **_route_pinned()},
    )
    assert completion.choices[0].message.model_extra.get("reasoning_content")


def test_tool_call_non_stream_and_stream(client):
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[SQUARE_ROOT],
                                                tool_choice="required", extra_body=_route_pinned())
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "square_root"
    assert "number" in json.loads(call.function.arguments)

    stream = client.chat.completions.create(model=MODEL, messages=HELLO, tools=[SQUARE_ROOT],
                                            tool_choice="required", stream=True, extra_body=_route_pinned())
    name, arguments, ids, finish = None, "", set(), None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            ids.add(tc.id)
            name = name or tc.function.name
            arguments += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "square_root" and finish == "tool_calls"
    assert len(ids - {None}) == 1
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_json_schema_answer_conforms(client):
    schema = {"type": "object", "properties": {"is_fruit": {"type": "boolean"}}, "required": ["is_fruit"],
              "additionalProperties": False}
    completion = client.chat.completions.create(
        model="zai-org/GLM-5.2", messages=[{"role": "user", "content": "Is a banana a fruit?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
        extra_body=_route_pinned(),
    )
    assert isinstance(json.loads(completion.choices[0].message.content)["is_fruit"], bool)


@pytest.mark.parametrize(
    ("fault", "exception", "status"),
    [
        ("status:500:string", openai.InternalServerError, 502),
        ("status:503:object", openai.InternalServerError, 502),
        ("status:429:string", openai.RateLimitError, 429),
        ("status:401:string", openai.InternalServerError, 502),
        ("status:403:string", openai.InternalServerError, 502),
        ("status:402:string", openai.InternalServerError, 503),
        ("status:400:bare", openai.BadRequestError, 400),
        ("status:413:string", openai.APIStatusError, 413),
    ],
)
def test_upstream_errors_map_to_openai_exceptions(client, standins, fault, exception, status):
    # Pinned to one route with no fallback, so the upstream's error is what the client sees.
    _fault(standins, fault, times=5)
    with pytest.raises(exception) as info:
        client.chat.completions.create(model="deepseek-ai/DeepSeek-V4-Flash-0731", messages=HELLO,
                                       extra_body=_route_pinned())
    assert info.value.status_code == status
    body = info.value.body
    assert set(body) >= {"message", "type", "param", "code"}


def test_upstream_timeout_is_a_504(client, standins):
    _fault(standins, "delay_first_byte_ms:8000")
    with pytest.raises(openai.APITimeoutError if False else openai.InternalServerError) as info:
        client.chat.completions.create(model="deepseek-ai/DeepSeek-V4-Flash-0731", messages=HELLO, stream=True,
                                       extra_body=_route_pinned())
    assert info.value.status_code == 504
    assert "first byte" in info.value.body["message"] or "first chunk" in info.value.body["message"]


def test_errors_on_the_gateway_itself(gateway, client):
    wrong = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-sy-wrongwrongwrongwrongwrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="nope", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no/such-model", messages=HELLO)
    assert info.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=HELLO, temperature=9)
    assert info.value.body["param"] == "temperature"


def test_models_lists_catalog_with_prices(client):
    models = {m.id: m for m in client.models.list().data}
    assert "moonshotai/Kimi-K2.5" in models
    kimi = models["moonshotai/Kimi-K2.5"].model_extra
    assert kimi["context_length"] == 262000 and kimi["features"]["vision"] is True
    direct = next(r for r in kimi["routes"] if r["front_end"] == "baseten")
    assert direct["pricing"] == {"kind": "per_token", "input_per_mtok": "0.60", "output_per_mtok": "3.00"}
    unpriced = models["moonshotai/Kimi-K2-Thinking"].model_extra
    assert next(r for r in unpriced["routes"] if r["front_end"] == "baseten")["pricing"]["kind"] == "unknown"


def test_health_and_request_id(gateway):
    r = httpx.get(gateway.url + "/healthz", headers={"x-request-id": "my-trace-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "my-trace-1"
    r = httpx.get(gateway.url + "/readyz")
    assert r.status_code == 200 and r.json()["checks"]["database"] is True
    assert httpx.get(gateway.url + "/nope").json()["error"]["code"] == "not_found"


def test_reasoning_object_is_mapped_per_model_and_exclude_strips_it(client, gateway, standins, tenant):
    # OpenRouter's reasoning object: on an effort model it becomes reasoning_effort, and `exclude`
    # keeps the (still billed) reasoning out of what the client receives.
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, extra_body=_route_pinned({"reasoning": {"effort": "high", "exclude": True}}))
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert "reasoning_content" not in (answer.choices[0].message.model_extra or {})
    log = httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"]
    sent = [r["body"] for r in log if r["path"].endswith("/chat/completions")][-1]
    assert sent["reasoning_effort"] == "high" and "reasoning" not in sent
    stream = client.chat.completions.create(
        model="zai-org/GLM-4.7", messages=HELLO, stream=True,
        extra_body=_route_pinned({"reasoning": {"enabled": True, "exclude": True}}))
    deltas = [c.choices[0].delta for c in stream if c.choices]
    assert not any((d.model_extra or {}).get("reasoning_content") for d in deltas)
    log = httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"]
    sent = [r["body"] for r in log if r["path"].endswith("/chat/completions")][-1]
    assert sent["chat_template_args"] == {"enable_thinking": True}
