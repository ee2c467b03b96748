"""Request bodies and the rejection check shared by the validator's tests."""

from __future__ import annotations

import copy

import pytest

from service.chat.validate import validate_chat_request
from service.errors import GatewayError


def minimal() -> dict:
    return {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]}


def with_fields(**fields: object) -> dict:
    body = minimal()
    body.update(fields)
    return body


def with_messages(*messages: object) -> dict:
    return with_fields(messages=list(messages))


def user(content: object = "hi", **extra: object) -> dict:
    return {"role": "user", "content": content, **extra}


def tool(name: str = "square_root", **function: object) -> dict:
    return {"type": "function", "function": {"name": name, **function}}


SQUARE_ROOT_TOOL = {
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
        "strict": True,
    },
}

TOOL_ARGUMENTS = '{\n  "number": 132413\n}'

# Every field the validator knows, each with a valid value, and every message shape.
_RICH = {
    "model": "moonshotai/Kimi-K2.5",
    "models": ["moonshotai/Kimi-K2.5", "zai-org/GLM-5.2"],
    "messages": [
        {"role": "system", "content": "Be brief.", "name": "ops"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {
            "role": "user",
            "name": "ana",
            "content": [
                {"type": "text", "text": "What is in this picture and this clip?",
                 "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "30m"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Need the tool.",
            "tool_calls": [
                {
                    "id": "chatcmpl-tool-1",
                    "type": "function",
                    "function": {"name": "square_root", "arguments": TOOL_ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "chatcmpl-tool-1", "name": "square_root", "content": "363.88"},
        {"role": "assistant", "content": [{"type": "text", "text": "About 363.88."}], "refusal": None},
        {"role": "user", "content": "Thanks. Now as JSON."},
    ],
    "frequency_penalty": 0.5,
    "logit_bias": {"50256": -100, "11": 2.5},
    "logprobs": True,
    "top_logprobs": 3,
    "max_tokens": 4096,
    "max_completion_tokens": 2048,
    "n": 1,
    "presence_penalty": -0.5,
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "answer-v1",
            "description": "The answer",
            "schema": {"type": "object", "properties": {"value": {"type": "number"}}},
            "strict": True,
        },
    },
    "seed": 42,
    "stop": ["\n\n", "END"],
    "stream": True,
    "stream_options": {"include_usage": True, "continuous_usage_stats": False, "include_obfuscation": False},
    "temperature": 0.7,
    "top_p": 0.9,
    "tools": [SQUARE_ROOT_TOOL, {"type": "function", "function": {"name": "now"}}],
    "tool_choice": {"type": "function", "function": {"name": "square_root"}},
    "parallel_tool_calls": False,
    "user": "user-1234",
    "best_of": 1,
    "top_k": 40,
    "top_p_min": 0.1,
    "min_p": 0.05,
    "repetition_penalty": 1.1,
    "length_penalty": 1.0,
    "early_stopping": False,
    "bad": ["darn"],
    "bad_token_ids": [13, 198],
    "stop_token_ids": [0, 2],
    "include_stop_str_in_output": False,
    "ignore_eos": False,
    "min_tokens": 1,
    "skip_special_tokens": True,
    "spaces_between_special_tokens": True,
    "truncate_prompt_tokens": 100000,
    "echo": False,
    "add_generation_prompt": True,
    "add_special_tokens": False,
    "documents": [{"title": "Roots", "text": "A square root of x is y with y*y = x."}],
    "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
    "chat_template_args": {"enable_thinking": True, "extra": [1, 2]},
    "disaggregated_params": {"request_type": "context_only"},
    "reasoning_effort": "high",
    "reasoning": {"effort": "high", "exclude": True, "enabled": True},
    "metadata": {"team": "search", "ticket": "OPS-1"},
    # OpenAI's parameters that no route uses: accepted and dropped (service.chat.params).
    "store": True,
    "service_tier": "flex",
    "prompt_cache_key": "tenant-7:search",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
    "safety_identifier": "hashed-user-42",
    "prediction": {"type": "content", "content": "{\"value\": 363.88}"},
    "modalities": ["text"],
    "verbosity": "medium",
    "provider": {
        "order": ["xpay", "baseten"],
        "only": ["xpay", "baseten", "orthogonal"],
        "ignore": ["orthogonal"],
        "allow_fallbacks": False,
        "require_parameters": True,
        "sort": "price",
        "max_cost_usd": 0.1,
    },
}

# Characters routing counts in _RICH: text content, tool-call arguments and reasoning.
RICH_TEXT_CHARS = sum(
    len(s)
    for s in (
        "Be brief.",
        "Answer in English.",
        "What is in this picture and this clip?",
        "Need the tool.",
        TOOL_ARGUMENTS,
        "363.88",
        "About 363.88.",
        "Thanks. Now as JSON.",
    )
)


def rich() -> dict:
    return copy.deepcopy(_RICH)


def assert_rejected(body, param, fragment, code) -> None:
    """The validator refuses `body` with a 400 in OpenAI's shape naming `param`, and leaves it intact."""
    before = copy.deepcopy(body)
    with pytest.raises(GatewayError) as caught:
        validate_chat_request(body)
    error = caught.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.param == param
    assert fragment in error.message
    assert error.code == code
    # The OpenAI wire shape the client reads.
    assert error.body() == {
        "error": {"message": error.message, "type": "invalid_request_error", "param": param, "code": code}
    }
    # deepcopy shares float objects, so NaN compares equal to itself by identity here.
    assert body == before, "the validator must not mutate the body"
