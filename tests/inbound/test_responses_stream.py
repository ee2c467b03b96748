"""Chat chunk streams as Responses event streams, checked against the openai SDK's own stream reader."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.inbound.responses_output import chat_to_response
from service.inbound.responses_request import ResponsesRequest, responses_to_chat
from service.inbound.responses_stream import ResponsesStream
from tests.cassettes import DEEPSEEK_STREAM, GPT_OSS_TOOLS, recorded_chunks
from tests.inbound.responses_support import completion, completion_to_chunks, parse_sse

RESPONSE_ID = "resp_s1"
CREATED = 1780264605
TOOLS = [
    {"type": "function", "name": n, "parameters": {"type": "object"}}
    for n in ("square_root", "lookup", "search")
]


def request(**body: Any) -> ResponsesRequest:
    return responses_to_chat(
        {"model": "openai/gpt-oss-120b", "input": "Hi", "stream": True, "tools": TOOLS, **body}, history=None
    )


def run(chunks: list[dict[str, Any]], req: ResponsesRequest | None = None) -> tuple[bytes, ResponsesStream]:
    stream = ResponsesStream(req or request(), response_id=RESPONSE_ID, created_at=CREATED)
    raw = b"".join(stream.feed(chunk) for chunk in chunks)
    return raw + stream.close(), stream


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole answer a chunk stream amounts to, put together without the code under test."""
    reasoning, content, finish, usage, model = "", "", "stop", None, "openai/gpt-oss-120b"
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        model = chunk.get("model") or model
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], [call.get("id") or "", "", ""])
                function = call.get("function") or {}
                entry[1] = entry[1] or function.get("name") or ""
                entry[2] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    tool_calls = [tuple(calls[i]) for i in sorted(calls)]
    return completion(
        content=content or None,
        reasoning=reasoning or None,
        tool_calls=tool_calls or None,  # type: ignore[arg-type]
        finish_reason=finish,
        model=model,
        usage=usage,
    )


def sdk_read(raw: bytes) -> tuple[list[Any], Any]:
    """Feed the bytes to the openai SDK's `responses.stream` reader: its events and final response."""

    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = openai.OpenAI(
            api_key="sk-test", base_url="http://gateway.test/v1", http_client=http, max_retries=0
        )
        with client.responses.stream(model="m", input="Hi") as stream:
            events = list(stream)
            try:
                final = stream.get_final_response()
            except RuntimeError:
                final = None
    return events, final


def without_parsed(value: Any) -> Any:
    """The SDK adds `parsed` fields for structured outputs; the wire object has none."""
    if isinstance(value, dict):
        return {k: without_parsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [without_parsed(v) for v in value]
    return value


def check_against_sdk(raw: bytes, expected: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events = parse_sse(raw)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    terminal = events[-1][1]
    assert terminal["response"] == expected  # what the client is sent equals the unstreamed answer
    sdk_events, final = sdk_read(raw)
    assert [e.type for e in sdk_events] == [name for name, _ in events]
    if expected["status"] == "completed":
        assert without_parsed(final.to_dict()) == expected
    done = [data["item"] for name, data in events if name == "response.output_item.done"]
    assert done == expected["output"]
    # What the SDK accumulated from the deltas is what the final items hold.
    for event in sdk_events:
        if event.type == "response.output_text.delta":
            assert expected["output"][event.output_index]["content"][0]["text"].startswith(event.snapshot)
        if event.type == "response.function_call_arguments.delta":
            assert expected["output"][event.output_index]["arguments"].startswith(event.snapshot)
    return events


# Recorded Baseten streams.


def test_recorded_tool_call_stream() -> None:
    chunks = recorded_chunks(GPT_OSS_TOOLS)
    raw, stream = run(chunks)
    expected = chat_to_response(
        assemble(chunks), request=request(), response_id=RESPONSE_ID, created_at=CREATED
    )
    events = check_against_sdk(raw, expected)
    names = [name for name, _ in events]
    assert names[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    reasoning_done = names.index("response.reasoning_summary_text.done")
    assert names[reasoning_done : reasoning_done + 4] == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
    ]
    assert names[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = stream.response["output"][-1] if stream.response else {}
    assert call["call_id"].startswith("chatcmpl-tool-") and json.loads(call["arguments"]) == {
        "number": 132413
    }
    assert (
        stream.response and stream.response["usage"]["input_tokens"] == chunks[-1]["usage"]["prompt_tokens"]
    )


def test_recorded_content_after_the_finish_chunk_is_kept() -> None:
    chunks = recorded_chunks(DEEPSEEK_STREAM)
    finish_at = next(i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0].get("finish_reason"))
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") for c in chunks[finish_at + 1 :])
    raw, stream = run(chunks)
    expected = chat_to_response(
        assemble(chunks), request=request(), response_id=RESPONSE_ID, created_at=CREATED
    )
    check_against_sdk(raw, expected)
    assert stream.response and stream.response["output"][-1]["content"][0]["text"] == "Hello"


# Endings.


def test_cut_answer_ends_incomplete() -> None:
    chunks = completion_to_chunks(
        completion(reasoning="Long thought", content="Once upon", finish_reason="length")
    )
    raw, _ = run(chunks)
    events = parse_sse(raw)
    name, data = events[-1]
    assert name == "response.incomplete"
    assert data["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["response"]["output"][-1]["status"] == "incomplete"
    expected = chat_to_response(
        assemble(chunks), request=request(), response_id=RESPONSE_ID, created_at=CREATED
    )
    check_against_sdk(raw, expected)


def test_empty_stream_is_an_empty_message() -> None:
    raw, stream = run([])
    names = [name for name, _ in parse_sse(raw)]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert stream.response and stream.response["output"][0]["content"][0]["text"] == ""
    assert stream.feed(completion_to_chunks(completion(content="late"))[1]) == b"" and stream.close() == b""


def test_failure_after_start_ends_with_response_failed() -> None:
    chunks = completion_to_chunks(completion(content="Partial answer", reasoning="Hm"))
    stream = ResponsesStream(request(), response_id=RESPONSE_ID, created_at=CREATED)
    raw = b"".join(stream.feed(c) for c in chunks[:6])
    raw += stream.error("Upstream failure (baseten): connection reset", "upstream_stream_error")
    events = parse_sse(raw)
    name, data = events[-1]
    assert name == "response.failed"
    response = data["response"]
    assert response["status"] == "failed"
    assert response["error"] == {
        "code": "server_error",
        "message": "Upstream failure (baseten): connection reset",
    }
    assert [item["type"] for item in response["output"]] == ["reasoning", "message"]
    assert response["output"][1]["status"] == "incomplete"
    sdk_events, final = sdk_read(raw)
    assert sdk_events[-1].type == "response.failed" and final is None
    assert sdk_events[-1].response.error.message.endswith("connection reset")
    assert stream.close() == b"" and stream.error("again", "x") == b""


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("upstream_rate_limited", "rate_limit_exceeded"),
        ("context_length_exceeded", "context_length_exceeded"),
        ("budget_exceeded", "insufficient_quota"),
        ("upstream_timeout", "server_error"),
    ],
)
def test_failure_before_any_chunk(code: str, expected: str) -> None:
    stream = ResponsesStream(request(), response_id=RESPONSE_ID, created_at=CREATED)
    events = parse_sse(stream.error("Rate limited. Please try again in 2s.", code))
    assert [name for name, _ in events] == ["response.created", "response.in_progress", "response.failed"]
    assert events[-1][1]["response"]["error"]["code"] == expected


def test_framing_is_openai_sse() -> None:
    raw, _ = run(completion_to_chunks(completion(content="Hi")))
    blocks = raw.split(b"\n\n")
    assert blocks[-1] == b""
    for block in blocks[:-1]:
        event, data = block.split(b"\n")
        assert event.startswith(b"event: response.") and data.startswith(b"data: {")
    assert b"[DONE]" not in raw and b"\r" not in raw


# Any chat stream the upstreams may send reads, through the SDK, as the unstreamed answer.

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def _null_keys(chunk: dict[str, Any]) -> dict[str, Any]:
    """DeepSeek and gpt-oss style: absent delta keys sent as explicit nulls."""
    for choice in chunk.get("choices") or []:
        choice["delta"] = {
            "content": None,
            "reasoning_content": None,
            "tool_calls": None,
            "role": None,
            "function_call": None,
            "refusal": None,
            **choice["delta"],
        }
    return chunk


@st.composite
def chat_streams(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    calls = [
        (f"chatcmpl-tool-{k}", draw(st.sampled_from(["square_root", "lookup", "search"])), draw(_text))
        for k in range(draw(st.integers(0, 3)))
    ]
    answer = completion(
        reasoning=draw(st.none() | _text),
        content=draw(st.none() | _text),
        tool_calls=calls or None,
        finish_reason=draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"])),
        usage={
            "prompt_tokens": draw(st.integers(0, 10**6)),
            "completion_tokens": draw(st.integers(0, 10**5)),
            "total_tokens": draw(st.integers(0, 2 * 10**6)),
            "prompt_tokens_details": {"cached_tokens": draw(st.integers(0, 100))},
            "completion_tokens_details": {"reasoning_tokens": draw(st.integers(0, 100))},
            "cost": draw(st.floats(0, 10, allow_nan=False)),
        },
    )
    chunks = completion_to_chunks(answer, draw(st.integers(1, 9)))
    body, tail = chunks[:-2], chunks[-2:]  # the finish chunk and the usage-only chunk
    if len(calls) > 1 and draw(st.booleans()):
        # Parallel calls whose fragments interleave, each call's own fragments in order.
        def call_of(chunk: dict[str, Any]) -> dict[str, Any] | None:
            return (chunk["choices"][0]["delta"].get("tool_calls") or [None])[0]

        heads = [c for c in body if call_of(c) and call_of(c)["function"]["name"]]
        fragments: dict[int, list[dict[str, Any]]] = {k: [] for k in range(len(calls))}
        for c in body:
            if call_of(c) and not call_of(c)["function"]["name"]:
                fragments[call_of(c)["index"]].append(c)
        rest = [c for c in body if not call_of(c)]
        order = draw(st.permutations([k for k in fragments for _ in fragments[k]]))
        body = rest + heads + [fragments[k].pop(0) for k in order]
    if not calls and answer["choices"][0]["message"].get("content") and draw(st.booleans()):
        # DeepSeek: the finish chunk comes before the last content chunk.
        tail = [tail[0], body.pop(), tail[1]]
    chunks = body + tail
    if draw(st.booleans()):
        # Baseten's continuous usage: cumulative usage on every chunk, the cost only at the end.
        for n, chunk in enumerate(chunks[:-1]):
            chunk["usage"] = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
    if draw(st.booleans()):
        chunks = [_null_keys(c) for c in chunks]
    return answer, chunks


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat_streams())
def test_sdk_reads_every_stream_as_the_whole_answer(
    stream_case: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    answer, chunks = stream_case
    raw, stream = run(chunks)
    expected = chat_to_response(answer, request=request(), response_id=RESPONSE_ID, created_at=CREATED)
    check_against_sdk(raw, expected)
    assert stream.response == expected
