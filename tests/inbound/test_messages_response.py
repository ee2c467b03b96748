"""Chat Completions answer -> Anthropic message."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import Message

from service.inbound.messages_response import chat_to_message, tool_input
from tests.inbound.support import body, translate

REQUEST = translate(body(stop_sequences=["END", "\n\nHuman:"]))

# Baseten's non-streamed answer shape (upstreams.md 1.4, DeepSeek-V4-Pro).
DEEPSEEK = {
    "id": "chatcmpl-0929d3ad",
    "choices": [
        {
            "index": 0,
            "message": {
                "content": "Hello",
                "role": "assistant",
                "reasoning_content": "We are asked: say hello.",
            },
            "finish_reason": "stop",
        }
    ],
    "created": 1780264605,
    "model": "deepseek-ai/DeepSeek-V4-Pro",
    "object": "chat.completion",
    "usage": {
        "prompt_tokens": 13,
        "completion_tokens": 67,
        "total_tokens": 80,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 64},
        "cost": 0.000256,
    },
}


def completion(message: dict[str, Any], finish: str | None = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "model": "openai/gpt-oss-120b",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}
        ],
        "usage": {
            "prompt_tokens": 157,
            "completion_tokens": 45,
            "prompt_tokens_details": {"cached_tokens": 64},
        },
    }


def test_a_reasoning_answer_becomes_thinking_then_text() -> None:
    message = chat_to_message(DEEPSEEK, request=REQUEST)
    assert message == {
        "id": "msg_0929d3ad",
        "type": "message",
        "role": "assistant",
        "model": "deepseek-ai/DeepSeek-V4-Pro",
        "content": [
            {"type": "thinking", "thinking": "We are asked: say hello.", "signature": ""},
            {"type": "text", "text": "Hello"},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 13,
            "output_tokens": 67,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cost": 0.000256,
        },
    }
    Message.model_validate(message)  # the anthropic SDK's own model of a message accepts it


def test_tool_calls_become_tool_use_blocks_after_the_text() -> None:
    answer = completion(
        {
            "content": "Let me compute.",
            "tool_calls": [
                {
                    "id": "chatcmpl-tool-7233ebad",
                    "type": "function",
                    "function": {"name": "square_root", "arguments": '{\n  "number": 132413\n}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "log", "arguments": "{}"}},
            ],
        },
        "tool_calls",
    )
    message = chat_to_message(answer, request=REQUEST)
    assert message["content"] == [
        {"type": "text", "text": "Let me compute."},
        {
            "type": "tool_use",
            "id": "chatcmpl-tool-7233ebad",
            "name": "square_root",
            "input": {"number": 132413},
        },
        {"type": "tool_use", "id": "call_2", "name": "log", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 93,
        "output_tokens": 45,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 64,
    }
    Message.model_validate(message)


@pytest.mark.parametrize(
    "arguments",
    ['{"a": 1', "not json", "[1, 2]", '"text"', "", "   ", "null", '{"big": 1e999}', '{"x": NaN}', None, 7],
)
def test_arguments_that_are_not_a_json_object_become_empty_input(arguments: object) -> None:
    assert tool_input(arguments) == {}
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    message = chat_to_message(completion({"tool_calls": [call]}, "tool_calls"), request=REQUEST)
    assert message["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]


def test_a_call_without_an_id_gets_one_derived_from_the_message() -> None:
    call = {"type": "function", "function": {"name": "f", "arguments": '{"k": "v"}'}}
    message = chat_to_message(completion({"tool_calls": [call]}, "tool_calls"), request=REQUEST)
    assert message["content"][0]["id"] == "toolu_abc123_0"


@pytest.mark.parametrize(
    ("finish", "extra", "tools", "expected"),
    [
        ("stop", {}, False, ("end_turn", None)),
        ("stop", {"stop_reason": "END"}, False, ("stop_sequence", "END")),
        ("stop", {"stop_reason": "\n\nHuman:"}, False, ("stop_sequence", "\n\nHuman:")),
        ("stop", {"stop_reason": "OTHER"}, False, ("end_turn", None)),
        ("stop", {"stop_reason": 154827}, False, ("end_turn", None)),  # GLM's token id
        ("length", {}, False, ("max_tokens", None)),
        ("length", {}, True, ("max_tokens", None)),
        ("tool_calls", {}, True, ("tool_use", None)),
        ("stop", {}, True, ("tool_use", None)),
        ("tool_calls", {}, False, ("end_turn", None)),
        ("content_filter", {}, False, ("refusal", None)),
        (None, {}, False, ("end_turn", None)),
        ("abort", {}, False, ("end_turn", None)),
    ],
)
def test_finish_reasons_map_to_stop_reasons(
    finish: str | None, extra: dict[str, Any], tools: bool, expected: tuple[str, str | None]
) -> None:
    message: dict[str, Any] = {"content": "x"}
    if tools:
        message["tool_calls"] = [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]
    answer = chat_to_message(completion(message, finish, **extra), request=REQUEST)
    assert (answer["stop_reason"], answer["stop_sequence"]) == expected


def test_a_length_stop_during_reasoning_has_only_a_thinking_block() -> None:
    # Baseten omits `content` entirely when max_tokens is hit while reasoning (upstreams.md 1.4).
    message = chat_to_message(completion({"reasoning_content": "Let me think"}, "length"), request=REQUEST)
    assert message["content"] == [{"type": "thinking", "thinking": "Let me think", "signature": ""}]
    assert message["stop_reason"] == "max_tokens"


def test_usage_without_cache_details_or_cost_and_no_usage_at_all() -> None:
    answer = completion({"content": "x"})
    answer["usage"] = {"prompt_tokens": 10, "completion_tokens": 3}
    assert chat_to_message(answer, request=REQUEST)["usage"] == {
        "input_tokens": 10,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
    }
    del answer["usage"]
    assert chat_to_message(answer, request=REQUEST)["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


@pytest.mark.parametrize("cost", [0, 0.01, 1.5e-05, 3])
def test_the_gateways_cost_is_copied_as_is(cost: float) -> None:
    answer = completion({"content": "x"})
    answer["usage"]["cost"] = cost
    copied = chat_to_message(answer, request=REQUEST)["usage"]["cost"]
    assert copied == cost and type(copied) is type(cost)


def test_aliased_tool_names_are_given_back_as_the_client_sent_them() -> None:
    long_name = "mcp__github__search_repositories_by_topic_and_language_with_pagination"
    request = translate(body(tools=[{"name": long_name, "input_schema": {"type": "object"}}]))
    alias = request.chat["tools"][0]["function"]["name"]
    call = {"id": "c", "type": "function", "function": {"name": alias, "arguments": '{"q": "llm"}'}}
    message = chat_to_message(completion({"tool_calls": [call]}, "tool_calls"), request=request)
    assert message["content"][0]["name"] == long_name


def test_missing_or_odd_fields_do_not_crash() -> None:
    bare = chat_to_message({}, request=REQUEST)
    assert bare["id"].startswith("msg_") and len(bare["id"]) > 10
    assert (bare["model"], bare["content"], bare["stop_reason"]) == ("moonshotai/Kimi-K2.6", [], "end_turn")
    parts = completion({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    assert chat_to_message(parts, request=REQUEST)["content"] == [{"type": "text", "text": "ab"}]
    odd = completion({"content": None, "tool_calls": ["junk", {"function": "junk"}]})
    assert chat_to_message(odd, request=REQUEST)["content"] == [
        {"type": "tool_use", "id": "toolu_abc123_1", "name": "", "input": {}}
    ]
