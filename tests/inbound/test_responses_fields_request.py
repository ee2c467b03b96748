"""Responses request fields: sampling, output, reasoning and text format; fields accepted without
effect (each with its documented reason); fields refused; and a property: any well-formed request
becomes a chat request the gateway's validator accepts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.inbound.responses_request import IGNORED_FIELDS, responses_to_chat
from tests.inbound.responses_request_support import call, output, refused, translate, user

# Sampling, output, reasoning, text format, metadata.


def test_sampling_output_and_reasoning_fields() -> None:
    request = translate(
        {
            "input": "x",
            "max_output_tokens": 300,
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "high", "summary": "auto"},
            "metadata": {"team": "search"},
            "user": "u-1",
        }
    )
    chat = request.chat
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"]) == (300, 0.2, 0.9)
    assert chat["reasoning_effort"] == "high"
    assert chat["metadata"] == {"team": "search"} and chat["user"] == "u-1"
    assert request.ignored == ("reasoning.summary",)
    assert request.echo["reasoning"] == {"effort": "high", "summary": "auto"}


def test_text_formats() -> None:
    assert "response_format" not in translate({"input": "x", "text": {"format": {"type": "text"}}}).chat
    assert translate({"input": "x", "text": {"format": {"type": "json_object"}}}).chat["response_format"] == {
        "type": "json_object"
    }
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = translate(
        {
            "input": "x",
            "text": {
                "verbosity": "low",
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "schema": schema,
                    "strict": True,
                    "description": "The answer.",
                },
            },
        }
    )
    assert request.chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True, "description": "The answer."},
    }
    assert request.ignored == ("text.verbosity",)


def test_stream_asks_for_usage_and_store_is_kept() -> None:
    request = translate({"input": "x", "stream": True, "store": False})
    assert request.chat["stream"] is True and request.chat["stream_options"] == {"include_usage": True}
    assert request.stream is True and request.store is False


def test_safety_identifier_names_the_user_when_user_is_absent() -> None:
    alone = translate({"input": "x", "safety_identifier": "hash-1"})
    assert alone.chat["user"] == "hash-1" and alone.ignored == ()
    both = translate({"input": "x", "safety_identifier": "hash-1", "user": "u-1"})
    assert both.chat["user"] == "u-1" and both.ignored == ("safety_identifier",)


def test_routing_extensions_pass_through() -> None:
    request = translate({"input": "x", "provider": {"sort": "price"}, "models": ["zai-org/GLM-5.2"]})
    assert request.chat["provider"] == {"sort": "price"} and request.chat["models"] == ["zai-org/GLM-5.2"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"reasoning": {"summary": "long"}}, "reasoning.summary"),
        ({"reasoning": {"budget": 5}}, "reasoning.budget"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"text": {"format": {"type": "json_schema", "name": "a"}}}, "text.format.schema"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"text": {"verbosity": "loud"}}, "text.verbosity"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"user": 5}, "user"),
        ({"stream": "yes"}, "stream"),
        ({"store": 1}, "store"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"instructions": ["a"]}, "instructions"),
        ({"model": ""}, "model"),
        ({"model": None}, "model"),
        ({"previous_response_id": ""}, "previous_response_id"),
        ({"include": "reasoning.encrypted_content"}, "include"),
    ],
)
def test_bad_fields_are_refused_with_their_param(body: dict[str, Any], param: str) -> None:
    assert refused({"input": "x", **body}).param == param


# Fields accepted without effect, and fields refused.

IGNORED_VALUES: dict[str, object] = {
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "thread-1",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit"},
    "service_tier": "flex",
    "truncation": "auto",
    "client_metadata": {"x-codex-installation-id": "abc"},
    "safety_identifier": "hash-1",  # ignored only beside a user
    "stream_options": {"include_obfuscation": False},
    "top_logprobs": 3,
    "max_tool_calls": 4,
    "context_management": [{"type": "compaction"}],
    "image": {"context_compression": "auto"},
    "access_programs": {"cyber": "standard"},
    "background_options": {"completion_window": "soonest"},
}
IGNORED_NESTED: dict[str, dict[str, Any]] = {
    "reasoning.summary": {"reasoning": {"summary": "concise"}},
    "reasoning.generate_summary": {"reasoning": {"generate_summary": "auto"}},
    "reasoning.context": {"reasoning": {"context": "all_turns"}},
    "reasoning.mode": {"reasoning": {"mode": "pro"}},
    "text.verbosity": {"text": {"verbosity": "high"}},
    "tools.web_search": {"tools": [{"type": "web_search"}]},
}


def test_every_ignored_field_has_a_case_here() -> None:
    assert set(IGNORED_FIELDS) == set(IGNORED_VALUES) | set(IGNORED_NESTED)
    assert all(reason.endswith(".") and len(reason) > 30 for reason in IGNORED_FIELDS.values())


@pytest.mark.parametrize("field", sorted(IGNORED_VALUES))
def test_ignored_top_level_fields_leave_the_chat_request_alone(field: str) -> None:
    base = {"input": "x", "user": "u-1"}
    request = translate({**base, field: IGNORED_VALUES[field]})
    assert request.ignored == (field,)
    assert request.chat == translate(base).chat


@pytest.mark.parametrize("field", sorted(IGNORED_NESTED))
def test_ignored_nested_fields_are_reported(field: str) -> None:
    request = translate({"input": "x", **IGNORED_NESTED[field]})
    assert field in request.ignored
    assert "tools" not in request.chat and "response_format" not in request.chat


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"background": True}, "background"),
    ],
)
def test_features_that_cannot_be_kept_are_refused(body: dict[str, Any], param: str) -> None:
    error = refused({"input": "x", **body})
    assert (error.param, error.code) == (param, "unsupported_value")


def test_background_false_and_nulls_are_accepted() -> None:
    request = translate({"input": "x", "background": False, "temperature": None, "tools": None, "user": None})
    assert request.chat == {"model": "moonshotai/Kimi-K2.6", "messages": [{"role": "user", "content": "x"}]}


def test_unknown_fields_and_bodies_are_refused() -> None:
    error = refused({"input": "x", "max_tokens": 5})
    assert (error.param, error.code) == ("max_tokens", "unknown_parameter")
    with pytest.raises(GatewayError) as caught:
        responses_to_chat(["not", "an", "object"], history=None)
    assert caught.value.code == "invalid_type"
    with pytest.raises(GatewayError) as caught:
        responses_to_chat({"input": "x"}, history=None)
    assert caught.value.param == "model"


# Any well-formed request becomes a chat request the gateway's validator accepts.

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_names = st.sampled_from(["lookup", "search", "get_weather"])


@st.composite
def _turns(draw: st.DrawFn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [user(draw(_text))]
    for n in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["user", "system", "developer", "assistant", "calls", "reasoning"]))
        if kind in ("user", "system", "developer"):
            content: object = (
                draw(_text)
                if draw(st.booleans())
                else [
                    {"type": "input_text", "text": t} for t in draw(st.lists(_text, min_size=1, max_size=3))
                ]
            )
            items.append({"type": "message", "role": kind, "content": content})
        elif kind == "assistant":
            items.append(
                {
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": draw(_text), "annotations": []}],
                }
            )
        elif kind == "reasoning":
            items.append(
                {
                    "type": "reasoning",
                    "id": f"rs_{n}",
                    "summary": [{"type": "summary_text", "text": draw(_text)}],
                }
            )
        else:
            calls = [call(f"c{n}_{k}", draw(_names), draw(_text)) for k in range(draw(st.integers(1, 3)))]
            items += calls
            items += [output(c["call_id"], draw(_text)) for c in calls]
    return items


@settings(max_examples=150, deadline=None)
@given(
    items=_turns(),
    instructions=st.none() | _text,
    stream=st.booleans(),
    choice=st.sampled_from([None, "auto", "none", "required", {"type": "function", "name": "search"}]),
    effort=st.none() | st.sampled_from(["low", "medium", "high"]),
    max_output=st.none() | st.integers(1, 262_144),
)
def test_translations_pass_the_chat_validator(
    items: list[dict[str, Any]],
    instructions: str | None,
    stream: bool,
    choice: object,
    effort: str | None,
    max_output: int | None,
) -> None:
    tools = [
        {"type": "function", "name": n, "parameters": {"type": "object"}}
        for n in ("lookup", "search", "get_weather")
    ]
    body: dict[str, Any] = {
        "model": "m",
        "input": items,
        "tools": tools,
        "stream": stream,
        "instructions": instructions,
        "tool_choice": choice,
        "max_output_tokens": max_output,
    }
    if effort:
        body["reasoning"] = {"effort": effort}
    request = responses_to_chat(body, history=None)
    view = validate_chat_request(request.chat)
    assert view.stream is stream and view.include_usage is stream
    assert view.max_output_tokens == max_output and view.reasoning_effort == effort
    roles = [m["role"] for m in request.chat["messages"]]
    assert roles.count("tool") == sum(1 for i in items if i.get("type") == "function_call_output")
    assert len(request.input_items) == len(items)
