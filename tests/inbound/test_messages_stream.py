"""Chat chunk stream -> Anthropic events, checked against the anthropic SDK's own accumulator."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.inbound.messages_response import chat_to_message
from service.inbound.messages_stream import MessagesStream
from tests.cassettes import DEEPSEEK_STREAM, GPT_OSS_TOOLS, recorded_chunks
from tests.inbound.stream_support import (
    Answer,
    Call,
    accumulate,
    comparable,
    events,
    run_stream,
)
from tests.inbound.support import body, translate

LONG_NAME = "mcp__github__search_repositories_by_topic_and_language_with_pagination"
STOPS = ["END", "\n\nHuman:"]
REQUEST = translate(
    body(
        stream=True,
        stop_sequences=STOPS,
        tools=[
            {"name": name, "input_schema": {"type": "object"}} for name in ("get_weather", "Read", LONG_NAME)
        ],
    )
)
ALIAS = REQUEST.chat["tools"][2]["function"]["name"]

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def pieces(draw: st.DrawFn, whole: str) -> tuple[str, ...]:
    """`whole` cut at random places (empty pieces included: Baseten sends them)."""
    cuts = sorted(set(draw(st.lists(st.integers(0, len(whole)), max_size=5))))
    bounds = [0, *cuts, len(whole)]
    return tuple(whole[a:b] for a, b in pairwise(bounds))


@st.composite
def arguments(draw: st.DrawFn) -> str:
    value = draw(st.dictionaries(texts, json_values, max_size=4))
    style = draw(st.sampled_from(["compact", "pretty", "truncated", "garbage", "array", "empty", "overflow"]))
    if style == "compact":
        return json.dumps(value, separators=(",", ":"))
    if style == "pretty":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if style == "truncated":
        encoded = json.dumps(value)
        return encoded[: draw(st.integers(0, len(encoded)))]
    return {"garbage": "{not json", "array": "[1, 2]", "empty": "", "overflow": '{"n": 1e999}'}[style]


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    calls = []
    for position in range(draw(st.integers(0, 3))):
        encoded = draw(arguments())
        call_id = draw(st.sampled_from([f"chatcmpl-tool-{position}abc", None]))
        calls.append(
            Call(
                call_id, draw(st.sampled_from(["get_weather", "Read", ALIAS])), encoded, draw(pieces(encoded))
            )
        )
    prompt = draw(st.integers(0, 200_000))
    reasoning = draw(texts)
    content = draw(texts)
    return Answer(
        reasoning=draw(pieces(reasoning)) if reasoning else (),
        content=draw(pieces(content)) if content else (),
        calls=tuple(calls),
        finish=draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", None])),
        matched=draw(st.sampled_from([None, *STOPS, "other", 154827])),
        prompt=prompt,
        cached=draw(st.one_of(st.none(), st.integers(0, prompt))),
        completion=draw(st.integers(0, 100_000)),
        cost=draw(st.one_of(st.none(), st.floats(0, 100, allow_nan=False), st.integers(0, 3))),
        null_keys=draw(st.booleans()),
        usage_on_every_chunk=draw(st.booleans()),
        content_after_finish=draw(st.booleans()),
        repeat_call_ids=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(answers())
def test_the_sdk_accumulates_the_stream_into_the_same_message_as_the_whole_answer(answer: Answer) -> None:
    raw = run_stream(REQUEST, answer.chunks())
    expected = chat_to_message(answer.whole(), request=REQUEST)
    assert comparable(accumulate(raw)) == comparable(expected)

    sequence = events(raw)
    assert sequence[0]["type"] == "message_start" and [e["type"] for e in sequence[-2:]] == [
        "message_delta",
        "message_stop",
    ]
    assert sequence[-2]["usage"].get("cost") == expected["usage"].get("cost")
    _check_block_order(sequence)


def _check_block_order(sequence: list[dict[str, Any]]) -> None:
    """Blocks open one at a time with consecutive indexes; deltas only inside their open block."""
    expected_index = 0
    open_index: int | None = None
    for event in sequence:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None and event["index"] == expected_index
            open_index = expected_index
            expected_index += 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
        elif kind in ("message_delta", "message_stop"):
            assert open_index is None


def test_the_recorded_deepseek_stream_with_content_after_the_finish_chunk() -> None:
    raw = run_stream(REQUEST, recorded_chunks(DEEPSEEK_STREAM))
    message = accumulate(raw)
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"].startswith("We are asked")
    assert message["content"][1]["text"] == "Hello"
    assert (message["id"], message["model"], message["stop_reason"]) == (
        "msg_b62418b048d0463fbaef193ee3ba0a8e",
        "deepseek-ai/DeepSeek-V4-Pro",
        "end_turn",
    )
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (13, 62)


def test_the_recorded_gpt_oss_tool_call_stream() -> None:
    raw = run_stream(REQUEST, recorded_chunks(GPT_OSS_TOOLS))
    message = accumulate(raw)
    assert [block["type"] for block in message["content"]] == ["thinking", "tool_use"]
    assert message["content"][1] == {
        "type": "tool_use",
        "id": "chatcmpl-tool-b7d946e50d644053bfe95b23d29b7620",
        "name": "square_root",
        "input": {"number": 132413},
    }
    assert message["stop_reason"] == "tool_use"
    assert {k: message["usage"][k] for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")} == {
        "input_tokens": 93,
        "output_tokens": 45,
        "cache_read_input_tokens": 64,
    }
    start = events(raw)[0]["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"]) == (93, 64)


def test_message_delta_carries_input_tokens_and_the_cost() -> None:
    stream = MessagesStream(REQUEST)
    stream.feed({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}}]})
    stream.feed(
        {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 5},
        "cost": 0.0125,
    }
    stream.feed({"id": "chatcmpl-1", "model": "m", "choices": [], "usage": usage})
    delta = events(stream.close())[-2]
    assert delta == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2, "input_tokens": 15, "cache_read_input_tokens": 5, "cost": 0.0125},
    }


def test_message_start_input_tokens_are_zero_without_usage_on_the_first_chunk() -> None:
    stream = MessagesStream(REQUEST)
    start = events(
        stream.feed({"id": "chatcmpl-9", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    )[0]
    assert start["message"]["usage"]["input_tokens"] == 0
    assert start["message"]["model"] == REQUEST.model  # the chunk named no model
    assert events(stream.close())[-2]["usage"] == {"output_tokens": 0}


def test_exact_sse_framing() -> None:
    stream = MessagesStream(REQUEST)
    assert stream.ping() == b'event: ping\ndata: {"type":"ping"}\n\n'
    first = stream.feed(
        {"id": "chatcmpl-x", "model": "m", "choices": [{"index": 0, "delta": {"content": "é"}}]}
    )
    assert first.startswith(b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_x",')
    assert first.endswith(
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"\xc3\xa9"}}\n\n'
    )


def test_nothing_is_emitted_after_message_stop() -> None:
    stream = MessagesStream(REQUEST)
    stream.feed({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "a"}}]})
    assert stream.close().endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    chunk = {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "late"}}]}
    assert (stream.feed(chunk), stream.close(), stream.ping(), stream.error("boom", "api_error")) == (
        b"",
        b"",
        b"",
        b"",
    )


def test_an_error_after_the_stream_began_ends_it() -> None:
    stream = MessagesStream(REQUEST)
    stream.feed({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "partial"}}]})
    raw = stream.error("Upstream failure: stream dropped", "overloaded_error")
    assert events(raw) == [
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Upstream failure: stream dropped"},
        }
    ]
    assert stream.done
    assert (stream.feed({"choices": []}), stream.close(), stream.ping()) == (b"", b"", b"")


def test_an_empty_upstream_stream_still_closes_into_a_valid_message() -> None:
    message = accumulate(MessagesStream(REQUEST).close())
    assert message["content"] == [] and message["stop_reason"] == "end_turn"
    assert message["id"].startswith("msg_") and message["model"] == REQUEST.model


def test_a_call_named_only_in_a_later_fragment_starts_when_its_name_arrives() -> None:
    stream = MessagesStream(REQUEST)
    raw = stream.feed(
        {
            "id": "chatcmpl-2",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"arguments": '{"ci'}}]},
                }
            ],
        }
    )
    assert b"content_block_start" not in raw
    raw += stream.feed(
        {
            "id": "chatcmpl-2",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"name": "get_weather", "arguments": 'ty": "Oslo"}'}}
                        ]
                    },
                }
            ],
        }
    )
    raw += stream.close()
    message = accumulate(raw)
    assert message["content"] == [
        {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Oslo"}}
    ]
    assert message["stop_reason"] == "tool_use"


def test_calls_without_index_are_matched_by_id_and_aliases_are_undone() -> None:
    stream = MessagesStream(REQUEST)
    chunks = [
        {"tool_calls": [{"id": "c1", "function": {"name": ALIAS, "arguments": '{"q":'}}]},
        {"tool_calls": [{"id": "c1", "function": {"arguments": ' "x"}'}}]},
        {"tool_calls": [{"id": "c2", "function": {"name": "Read", "arguments": "{}"}}]},
    ]
    raw = b"".join(
        stream.feed({"id": "chatcmpl-3", "choices": [{"index": 0, "delta": delta}]}) for delta in chunks
    )
    message = accumulate(raw + stream.close())
    assert [(b["id"], b["name"], b["input"]) for b in message["content"]] == [
        ("c1", LONG_NAME, {"q": "x"}),
        ("c2", "Read", {}),
    ]


def test_a_fragment_for_a_call_whose_block_ended_is_dropped() -> None:
    stream = MessagesStream(REQUEST)
    fragments = [
        {"index": 0, "id": "c1", "function": {"name": "Read", "arguments": '{"a": 1}'}},
        {"index": 1, "id": "c2", "function": {"name": "Read", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": "garbage"}},
    ]
    raw = b"".join(
        stream.feed({"id": "chatcmpl-4", "choices": [{"index": 0, "delta": {"tool_calls": [f]}}]})
        for f in fragments
    )
    message = accumulate(raw + stream.close())
    assert [block["input"] for block in message["content"]] == [{"a": 1}, {}]


def test_choices_other_than_the_first_are_ignored() -> None:
    stream = MessagesStream(REQUEST)
    raw = stream.feed(
        {
            "id": "chatcmpl-5",
            "choices": [
                {"index": 1, "delta": {"content": "other"}},
                {"index": 0, "delta": {"content": "mine"}},
            ],
        }
    )
    assert [block["text"] for block in accumulate(raw + stream.close())["content"]] == ["mine"]
