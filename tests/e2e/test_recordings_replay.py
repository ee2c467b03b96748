"""The recorded Baseten answers, replayed byte for byte as the upstream, reach the openai client intact."""

from __future__ import annotations

import asyncio
import json
import random

import openai
import pytest

from service.chat.sse import SSEParser
from service.simulator.runner import ServerThread
from tests.cassettes import (
    BAD_KEY,
    DEEPSEEK_STREAM,
    GLM_SCHEMA,
    GPT_OSS_TOOLS,
    interaction,
    recorded_chunks,
    response_body,
)
from tests.conftest import LiveGateway
from tests.support import create_tenant_with_key, wait_for_rows

RECORDINGS = {
    "deepseek-ai/DeepSeek-V4-Pro": DEEPSEEK_STREAM,
    "openai/gpt-oss-120b": GPT_OSS_TOOLS,
    "zai-org/GLM-5.2": GLM_SCHEMA,
    "deepseek-ai/DeepSeek-V3.1": BAD_KEY,
}


SHORT_MODEL = "deepseek-ai/DeepSeek-V4-Flash-0731"


def short_deepseek_body() -> bytes:
    """The DeepSeek recording cut to its first chunks, the finish chunk, the late content chunk
    and the usage chunk: small enough to arrive in one read together with its [DONE]."""
    chunks = recorded_chunks(DEEPSEEK_STREAM)
    kept = chunks[:3] + chunks[-3:]
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in kept) + b"data: [DONE]\n\n"


def replay_app():
    """An upstream that answers each model with its recorded response: status, type and body."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        model = json.loads(body)["model"]
        if model == SHORT_MODEL:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            await send({"type": "http.response.body", "body": short_deepseek_body()})
            return
        response = interaction(RECORDINGS[model])["response"]
        headers = [(k.lower().encode(), v[0].encode()) for k, v in response["headers"].items()
                   if k.lower() in ("content-type", "cache-control", "x-baseten-request-id")]
        await send({"type": "http.response.start", "status": response["code"], "headers": headers})
        await send({"type": "http.response.body", "body": response["body"].encode()})

    return app


class _OnlyBaseten:
    def __init__(self, url: str) -> None:
        self.api_keys = {"baseten": "recorded"}
        self.baseten_url = url
        self.xpay_url = None
        self.orthogonal_url = None


@pytest.fixture(scope="module")
def replay_gateway(database_url):
    upstream = ServerThread(replay_app()).start()
    gw = LiveGateway(_OnlyBaseten(upstream.url + "/v1"), database_url)
    tenant = create_tenant_with_key(database_url)
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=tenant.key, max_retries=0)
    client.database_url = database_url
    yield client
    gw.stop()
    upstream.stop()


def _recorded_text(name: str, field: str) -> str:
    return "".join((c["choices"][0]["delta"].get(field) or "") for c in recorded_chunks(name) if c["choices"])


def _recorded_usage(name: str) -> dict:
    return next(c["usage"] for c in reversed(recorded_chunks(name)) if c.get("usage"))


def test_deepseek_stream_with_finish_before_content(replay_gateway):
    raw = replay_gateway.chat.completions.with_raw_response.create(
        model="deepseek-ai/DeepSeek-V4-Pro", messages=[{"role": "user", "content": "Say hello. Use only one word."}],
        stream=True, stream_options={"include_usage": True})
    stream = raw.parse()
    content, reasoning, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            content += delta.content or ""
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    # The content chunk came after the finish chunk: it must not be lost.
    assert content == _recorded_text(DEEPSEEK_STREAM, "content") == "Hello"
    assert reasoning == _recorded_text(DEEPSEEK_STREAM, "reasoning_content")
    assert finish == "stop"
    recorded = _recorded_usage(DEEPSEEK_STREAM)
    assert (usage.prompt_tokens, usage.completion_tokens) == (recorded["prompt_tokens"], recorded["completion_tokens"])
    # 13 x 1.74 + 62 x 3.48 per million tokens
    assert usage.model_extra["cost"] == pytest.approx((13 * 1.74 + 62 * 3.48) / 1e6)


def test_a_stream_arriving_in_one_read_still_marks_its_first_token(replay_gateway):
    raw = replay_gateway.chat.completions.with_raw_response.create(
        model=SHORT_MODEL, messages=[{"role": "user", "content": "Say hello."}], stream=True)
    content = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert content == "Hello"
    rows = asyncio.run(wait_for_rows(replay_gateway.database_url,
                                     "SELECT first_token_at, ended_at FROM usage_events WHERE request_id = $1",
                                     1, raw.headers["x-request-id"]))
    assert rows[0]["first_token_at"] is not None and rows[0]["first_token_at"] <= rows[0]["ended_at"]


def test_gpt_oss_streamed_tool_call(replay_gateway):
    request = json.loads(interaction(GPT_OSS_TOOLS)["request"]["body"])
    request.pop("stream_options")
    stream = replay_gateway.chat.completions.create(**{**request, "stream": True},
                                                    stream_options={"include_usage": True})
    name, arguments, ids, finish, usage = None, "", set(), None, None
    for chunk in stream:
        if chunk.choices:
            for call in chunk.choices[0].delta.tool_calls or []:
                ids.add(call.id)
                name = name or call.function.name
                arguments += call.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    recorded_args = "".join(
        call["function"]["arguments"] or ""
        for c in recorded_chunks(GPT_OSS_TOOLS) if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls") or [])
    assert name == "square_root" and finish == "tool_calls"
    assert arguments == recorded_args and json.loads(arguments) == {"number": 132413}
    assert ids == {"chatcmpl-tool-b7d946e50d644053bfe95b23d29b7620"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (157, 45)
    assert usage.prompt_tokens_details.cached_tokens == 64


def test_recorded_validation_error_reaches_the_client(replay_gateway):
    request = json.loads(interaction(GLM_SCHEMA)["request"]["body"])
    request["response_format"]["json_schema"]["name"] = "answer"  # our own validator would refuse ""
    extra = {"chat_template_args": request.pop("chat_template_args")}  # not a named openai argument
    with pytest.raises(openai.BadRequestError) as info:
        replay_gateway.chat.completions.create(**request, extra_body=extra)
    assert info.value.body["message"] == "Validation: `response_format.json_schema.name` cannot be empty"


def test_recorded_bad_key_is_the_operators_problem(replay_gateway):
    with pytest.raises(openai.InternalServerError) as info:
        replay_gateway.chat.completions.create(model="deepseek-ai/DeepSeek-V3.1",
                                               messages=[{"role": "user", "content": "Tell a short joke."}])
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_auth_failed"


@pytest.mark.parametrize("name", [DEEPSEEK_STREAM, GPT_OSS_TOOLS])
def test_parser_reads_every_recorded_event_whatever_the_chunking(name):
    raw = response_body(name)
    expected = [json.dumps(c) for c in recorded_chunks(name)]
    rng = random.Random(name)
    for _ in range(20):
        parser, events, at = SSEParser(), [], 0
        while at < len(raw):
            step = rng.randint(1, 400)
            events += parser.feed(raw[at:at + step])
            at += step
        payloads = [json.dumps(json.loads(e)) for e in events if e != b"[DONE]"]
        assert payloads == expected and events[-1] == b"[DONE]"
