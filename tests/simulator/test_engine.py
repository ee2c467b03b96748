"""The fake engine: determinism, usage arithmetic, budgets, structured output and tool calls."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import jsonschema
import pytest

from service.catalog.loader import load_catalog
from service.simulator.catalog import load_fake_catalog
from service.simulator.engine import (
    coalesce_chunks,
    completion_body,
    generate,
    prompt_tokens_for,
    stream_chunks,
)
from tests.cassettes import WARMUP, response_body

MODELS = load_fake_catalog()
GPT_OSS = MODELS["openai/gpt-oss-120b"]
DEEPSEEK = MODELS["deepseek-ai/DeepSeek-V4-Pro"]
GLM47 = MODELS["zai-org/GLM-4.7"]
GLM52 = MODELS["zai-org/GLM-5.2"]
PLAIN = MODELS["zai-org/GLM-5"]  # reasoning "none"

HELLO = [{"role": "user", "content": "Say hello. Use only one word."}]
SQUARE_ROOT = {
    "type": "function",
    "function": {
        "name": "square_root",
        "description": "Calculates and return the square root of a number",
        "parameters": {
            "type": "object",
            "properties": {"number": {"type": "number"}},
            "required": ["number"],
            "additionalProperties": False,
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
        },
    },
}


def body(model, **extra):
    return {"model": model.id, "messages": HELLO, **extra}


def test_same_request_gives_same_tokens_on_every_call():
    first = generate(DEEPSEEK, body(DEEPSEEK))
    again = generate(DEEPSEEK, body(DEEPSEEK))
    assert first == again
    a = completion_body(DEEPSEEK, first, id="chatcmpl-x", created=1)
    b = completion_body(DEEPSEEK, again, id="chatcmpl-x", created=1)
    assert a == b
    other = generate(DEEPSEEK, {"model": DEEPSEEK.id, "messages": [{"role": "user", "content": "Other"}]})
    assert other.content_pieces != first.content_pieces or other.reasoning_pieces != first.reasoning_pieces


def test_content_is_a_modest_lorem_sentence():
    gen = generate(PLAIN, body(PLAIN))
    words = "".join(gen.content_pieces).rstrip(".").split()
    assert 8 <= len(words) <= 24
    assert gen.reasoning_pieces == [] and gen.finish_reason == "stop"


def test_prompt_tokens_formula():
    messages = [{"role": "user", "content": "héllo wörld"}]
    text = json.dumps(messages, separators=(",", ":"), ensure_ascii=False)
    assert prompt_tokens_for(messages) == math.ceil(len(text) / 4)
    tools_text = json.dumps([SQUARE_ROOT], separators=(",", ":"), ensure_ascii=False)
    expected = math.ceil(len(text) / 4) + math.ceil(len(tools_text) / 4)
    assert prompt_tokens_for(messages, [SQUARE_ROOT]) == expected


def test_usage_arithmetic_and_cached_tokens():
    gen = generate(DEEPSEEK, body(DEEPSEEK), fake_cached=5)
    usage = gen.usage(DEEPSEEK)
    assert usage["prompt_tokens"] == prompt_tokens_for(HELLO)
    assert usage["completion_tokens"] == len(gen.reasoning_pieces) + len(gen.content_pieces)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == len(gen.reasoning_pieces) > 0
    assert usage["prompt_tokens_details"] == {"audio_tokens": 0, "cached_tokens": 5}
    # Cached tokens can never exceed the prompt.
    assert generate(DEEPSEEK, body(DEEPSEEK), fake_cached=10**6).cached_tokens == usage["prompt_tokens"]
    partial = gen.usage(DEEPSEEK, upto_pieces=3)
    assert partial["completion_tokens"] == 3 and partial["completion_tokens_details"]["reasoning_tokens"] == 3


def test_gpt_oss_reports_zero_reasoning_tokens():
    gen = generate(GPT_OSS, body(GPT_OSS))
    assert gen.reasoning_pieces
    usage = gen.usage(GPT_OSS)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert usage["completion_tokens"] == len(gen.reasoning_pieces) + len(gen.content_pieces)


@pytest.mark.parametrize(
    ("model", "extra", "reasons"),
    [
        (DEEPSEEK, {}, True),
        (GLM47, {}, False),
        (GLM47, {"chat_template_args": {"enable_thinking": True}}, True),
        (GLM47, {"chat_template_args": {"enable_thinking": "yes"}}, False),
        (PLAIN, {"chat_template_args": {"enable_thinking": True}}, False),
        (MODELS["moonshotai/Kimi-K2-Thinking"], {}, True),
    ],
)
def test_reasoning_modes(model, extra, reasons):
    gen = generate(model, body(model, **extra))
    assert bool(gen.reasoning_pieces) is reasons
    message = completion_body(model, gen)["choices"][0]["message"]
    assert ("reasoning_content" in message) is reasons


def test_budget_spent_during_reasoning_omits_content():
    gen = generate(DEEPSEEK, body(DEEPSEEK, max_completion_tokens=3))
    assert gen.finish_reason == "length" and gen.content_pieces is None and len(gen.reasoning_pieces) == 3
    out = completion_body(DEEPSEEK, gen)
    assert "content" not in out["choices"][0]["message"]
    assert out["usage"]["completion_tokens"] == 3


def test_budget_spent_during_content_truncates_it():
    full = generate(DEEPSEEK, body(DEEPSEEK))
    budget = len(full.reasoning_pieces) + 2
    gen = generate(DEEPSEEK, body(DEEPSEEK, max_tokens=budget))
    assert gen.finish_reason == "length"
    assert gen.content_pieces == full.content_pieces[:2]
    assert gen.usage(DEEPSEEK)["completion_tokens"] == budget
    # max_completion_tokens wins over max_tokens, as the newer field.
    both = generate(DEEPSEEK, body(DEEPSEEK, max_tokens=1, max_completion_tokens=budget))
    assert both.usage(DEEPSEEK)["completion_tokens"] == budget


def test_budget_that_fits_ends_with_stop():
    gen = generate(PLAIN, body(PLAIN, max_tokens=4096))
    assert gen.finish_reason == "stop" and gen.usage(PLAIN)["completion_tokens"] < 4096


SCHEMAS = [
    {
        "type": "object",
        "properties": {"is_fruit": {"type": "boolean"}},
        "required": ["is_fruit"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 3, "maxLength": 12},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "color": {"enum": ["red", "green", "blue"]},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
                "required": ["city"],
            },
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
        },
        "required": ["name", "age", "score", "tags", "color", "address"],
    },
    {
        "type": "array",
        "items": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("question", ["Is a banana a fruit?", "Describe a person.", "List things."])
def test_json_schema_content_conforms(schema, question):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    request = {"model": GLM52.id, "messages": [{"role": "user", "content": question}], "response_format": fmt}
    gen = generate(GLM52, request)
    assert gen.finish_reason == "stop"
    jsonschema.validate(json.loads("".join(gen.content_pieces)), schema)


def test_json_object_content_is_a_json_object():
    gen = generate(GPT_OSS, body(GPT_OSS, response_format={"type": "json_object"}))
    assert isinstance(json.loads("".join(gen.content_pieces)), dict)


def test_required_tool_choice_gives_a_pretty_printed_tool_call():
    gen = generate(GPT_OSS, body(GPT_OSS, tools=[SQUARE_ROOT], tool_choice="required"))
    assert gen.finish_reason == "tool_calls" and gen.content_pieces is None
    (call,) = gen.tool_calls
    assert call["type"] == "function" and call["function"]["name"] == "square_root"
    assert call["id"].startswith("chatcmpl-tool-") and len(call["id"]) == len("chatcmpl-tool-") + 32
    int(call["id"].removeprefix("chatcmpl-tool-"), 16)
    arguments = call["function"]["arguments"]
    assert arguments.startswith("{\n  ")
    jsonschema.validate(json.loads(arguments), SQUARE_ROOT["function"]["parameters"])
    message = completion_body(GPT_OSS, gen)["choices"][0]["message"]
    assert "content" not in message and message["tool_calls"] == gen.tool_calls
    usage = gen.usage(GPT_OSS)
    assert usage["completion_tokens"] == len(gen.reasoning_pieces) + len(gen.tool_fragments[0])


@pytest.mark.parametrize(
    ("choice", "fake", "expected"),
    [
        ({"type": "function", "function": {"name": "weather"}}, False, "weather"),
        ("auto", False, None),
        ("auto", True, "square_root"),
        ("none", True, None),
        (None, False, None),
    ],
)
def test_tool_choice_rules(choice, fake, expected):
    extra = {"tools": [SQUARE_ROOT, WEATHER]}
    if choice is not None:
        extra["tool_choice"] = choice
    gen = generate(PLAIN, body(PLAIN, **extra), fake_tool_call=fake)
    if expected is None:
        assert gen.tool_calls is None and gen.content_pieces
    else:
        assert gen.tool_calls[0]["function"]["name"] == expected and gen.finish_reason == "tool_calls"
        tool = {"square_root": SQUARE_ROOT, "weather": WEATHER}[expected]
        arguments = json.loads(gen.tool_calls[0]["function"]["arguments"])
        jsonschema.validate(arguments, tool["function"]["parameters"])


def test_streamed_tool_call_fragments_reassemble():
    gen = generate(GPT_OSS, body(GPT_OSS, tools=[WEATHER], tool_choice="required"))
    chunks = stream_chunks(GPT_OSS, gen)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    first, rest = calls[0], calls[1:]
    assert first["function"] == {"name": "weather", "arguments": ""}
    assert len(rest) > 1 and all(c["id"] == first["id"] and c["function"]["name"] is None for c in rest)
    assert "".join(c["function"]["arguments"] for c in rest) == gen.tool_calls[0]["function"]["arguments"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_order_and_cumulative_usage():
    gen = generate(DEEPSEEK, body(DEEPSEEK))
    chunks = stream_chunks(DEEPSEEK, gen, id="chatcmpl-1", created=7)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    kinds = ["r" if d.get("reasoning_content") is not None else "c" for d in deltas]
    assert kinds == ["r"] * len(gen.reasoning_pieces) + ["c"] * len(gen.content_pieces)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == gen.usage(DEEPSEEK)
    counts = [c["usage"]["completion_tokens"] for c in chunks]
    assert counts == sorted(counts) and counts[0] == 0
    assert counts[-1] == gen.usage(DEEPSEEK)["completion_tokens"]
    assert {c["id"] for c in chunks} == {"chatcmpl-1"} and {c["created"] for c in chunks} == {7}
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == completion_body(DEEPSEEK, gen)["choices"][0]["message"]["content"]


def test_stream_usage_switches():
    gen = generate(DEEPSEEK, body(DEEPSEEK))
    quiet = stream_chunks(DEEPSEEK, gen, continuous_usage=False)
    assert all(c["usage"] is None for c in quiet[:-1]) and quiet[-1]["usage"] == gen.usage(DEEPSEEK)
    bare = stream_chunks(DEEPSEEK, gen, include_usage=False, continuous_usage=False)
    assert bare[-1]["choices"][0]["finish_reason"] == "stop" and all(c["usage"] is None for c in bare)


def test_finish_before_content_reorders_the_last_content_chunk():
    gen = generate(DEEPSEEK, body(DEEPSEEK))
    chunks = stream_chunks(DEEPSEEK, gen, finish_before_content=True)
    finish, last, tail = chunks[-3], chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["delta"]["content"] == gen.content_pieces[-1] and last["usage"] is None
    assert tail["choices"] == []


def test_sparse_style_omits_null_keys():
    gen = generate(GLM52, body(GLM52, chat_template_args={"enable_thinking": True}))
    chunks = stream_chunks(GLM52, gen)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert set(chunks[1]["choices"][0]["delta"]) == {"reasoning_content"}
    assert all("service_tier" not in c and "system_fingerprint" not in c for c in chunks)
    assert completion_body(GLM52, gen)["choices"][0]["stop_reason"] == 154827


def test_coalesce_joins_runs_without_changing_the_text():
    gen = generate(DEEPSEEK, body(DEEPSEEK))
    chunks = stream_chunks(DEEPSEEK, gen)
    joined = coalesce_chunks(chunks, 4)
    assert len(joined) < len(chunks)

    def text(seq, key):
        return "".join((c["choices"][0]["delta"].get(key) or "") for c in seq if c["choices"])

    for key in ("reasoning_content", "content"):
        assert text(joined, key) == text(chunks, key)
    assert joined[-1] == chunks[-1] and joined[-2]["usage"] == chunks[-2]["usage"]
    # The caller's chunks are left untouched.
    assert text(chunks, "content") == "".join(gen.content_pieces)


def test_fake_catalog_keeps_the_recording_verbatim_and_covers_the_gateway_catalog():
    recorded = json.loads(response_body(WARMUP))["data"]
    listings = [m.listing() for m in MODELS.values()]
    assert listings[: len(recorded)] == recorded
    assert all("fake" not in entry for entry in listings)
    gateway = load_catalog()
    assert set(gateway.models) <= set(MODELS)
    for model_id in gateway.models:
        fake = MODELS[model_id]
        route = gateway.find_route("baseten", model_id)
        assert fake.reasoning_mode == gateway.models[model_id].features.reasoning
        assert set(fake.pricing) == {"prompt", "completion", "image", "request", "input_cache_read"}
        for price in fake.pricing.values():
            assert Decimal(price) >= 0
        assert Decimal(fake.pricing["prompt"]) > 0 and Decimal(fake.pricing["completion"]) > 0
        if route is not None and route.pricing.input_per_mtok is not None:
            assert Decimal(fake.pricing["prompt"]) * 1_000_000 == route.pricing.input_per_mtok
            assert Decimal(fake.pricing["completion"]) * 1_000_000 == route.pricing.output_per_mtok
    assert MODELS["zai-org/GLM-5.2"].stream_style == "sparse" and DEEPSEEK.stream_style == "nulls"
    assert GPT_OSS.reasoning_tokens_reported is False and DEEPSEEK.reasoning_tokens_reported is True
