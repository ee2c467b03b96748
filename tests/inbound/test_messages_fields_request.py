"""Messages request parameters -> Chat Completions: max_tokens, sampling, thinking and effort, output
formats, metadata, streaming; every field accepted and dropped (with its documented reason), fields
refused, and count_tokens."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import GatewayError
from service.inbound.messages_request import count_tokens_to_chat
from tests.inbound.support import (
    WEATHER,
    assistant,
    body,
    refused,
    text,
    tool_result,
    tool_use,
    translate,
    user,
)


def test_max_tokens_is_required_and_bounded() -> None:
    without = body()
    del without["max_tokens"]
    assert refused(without, "max_tokens").code == "missing_required_parameter"
    refused(body(max_tokens=0), "max_tokens")
    refused(body(max_tokens=262_145), "max_tokens")
    # A whole float is an integer, as JSON Schema (and the chat validator) reads it.
    assert translate(body(max_tokens=10.0)).chat["max_tokens"] == 10


def test_sampling_parameters_map_one_to_one() -> None:
    request = translate(body(temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["\n\nHuman:", "END"]))
    assert {k: request.chat[k] for k in ("temperature", "top_p", "top_k", "stop")} == {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["\n\nHuman:", "END"],
    }
    assert request.stop_sequences == ("\n\nHuman:", "END")
    zero = translate(body(top_k=0, stop_sequences=[]))
    assert "top_k" not in zero.chat and "stop" not in zero.chat
    assert zero.ignored == ("top_k",)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"stop_sequences": ["ok", ""]}, "stop_sequences[1]"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"stop_sequences": [str(i) for i in range(33)]}, "stop_sequences"),
        ({"stream": "yes"}, "stream"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id"),
        ({"metadata": "me"}, "metadata"),
    ],
)
def test_bad_parameters_are_refused(fields: dict[str, Any], param: str) -> None:
    refused(body(**fields), param)


@pytest.mark.parametrize(
    ("fields", "reasoning", "ignored"),
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096},
            {"max_tokens": 2048},
            (),
        ),
        ({"thinking": {"type": "disabled"}}, {"enabled": False}, ()),
        ({"thinking": {"type": "adaptive"}}, {"enabled": True}, ()),
        ({"thinking": {"type": "between_tools"}}, {"enabled": True}, ()),
        (
            {"thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "high"}},
            {"enabled": True, "effort": "high"},
            ("thinking.display",),
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 1024}, "output_config": {"effort": "low"}},
            {"max_tokens": 1024},
            ("output_config.effort",),
        ),
        (
            {"thinking": {"type": "disabled"}, "output_config": {"effort": "max"}},
            {"enabled": False},
            ("output_config.effort",),
        ),
        ({"output_config": {"effort": "medium"}}, None, ("output_config.effort",)),
        (
            {"output_config": {"task_budget": {"type": "tokens", "total": 9000}}},
            None,
            ("output_config.task_budget",),
        ),
    ],
)
def test_thinking_and_effort_become_the_reasoning_object(
    fields: dict[str, Any], reasoning: dict[str, Any] | None, ignored: tuple[str, ...]
) -> None:
    request = translate(body(**fields))
    assert request.chat.get("reasoning") == reasoning
    assert request.ignored == ignored


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 512}, "max_tokens": 4096},
            "thinking.budget_tokens",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 4096}, "max_tokens": 4096},
            "thinking.budget_tokens",
        ),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "adaptive", "budget_tokens": 2048}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "deep"}}, "thinking.type"),
        ({"thinking": {}}, "thinking.type"),
        ({"thinking": True}, "thinking"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"output_config": {"verbosity": 1}}, "output_config.verbosity"),
        ({"output_config": {"format": {"type": "regex"}}}, "output_config.format.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        (
            {
                "output_config": {"format": {"type": "json_schema", "schema": {}}},
                "output_format": {"type": "json_schema", "schema": {}},
            },
            "output_format",
        ),
    ],
)
def test_bad_thinking_and_output_config_are_refused(fields: dict[str, Any], param: str) -> None:
    refused(body(**fields), param)


def test_structured_output_formats_become_a_strict_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    expected = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
    request = translate(body(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert request.chat["response_format"] == expected
    assert (
        translate(body(output_format={"type": "json_schema", "schema": schema})).chat["response_format"]
        == expected
    )


def test_metadata_user_id_becomes_user_and_other_keys_are_dropped() -> None:
    request = translate(body(metadata={"user_id": "u-42", "team": "infra", "empty": None}))
    assert request.chat["user"] == "u-42" and request.ignored == ("metadata.team",)
    assert "user" not in translate(body(metadata={"user_id": None})).chat


def test_streaming_asks_for_usage_in_the_stream() -> None:
    request = translate(body(stream=True))
    assert request.stream is True
    assert (request.chat["stream"], request.chat["stream_options"]) == (True, {"include_usage": True})
    assert "stream" not in translate(body(stream=False)).chat


# Every reason in IGNORED_FIELDS, exercised: (field, body fields, the path recorded).
IGNORED_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("cache_control", {"cache_control": {"type": "ephemeral"}}, "cache_control"),
    (
        "cache_control",
        {"messages": [user(text("x", cache_control={"type": "ephemeral"}))]},
        "messages[0].content[0].cache_control",
    ),
    (
        "cache_control",
        {"tools": [{**WEATHER, "cache_control": {"type": "ephemeral"}}]},
        "tools[0].cache_control",
    ),
    (
        "context_management",
        {"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}},
        "context_management",
    ),
    ("output_config.effort", {"output_config": {"effort": "high"}}, "output_config.effort"),
    (
        "output_config.task_budget",
        {"output_config": {"task_budget": {"type": "tokens", "total": 10}}},
        "output_config.task_budget",
    ),
    ("thinking.display", {"thinking": {"type": "adaptive", "display": "summarized"}}, "thinking.display"),
    (
        "thinking.block_binding",
        {"thinking": {"type": "enabled", "budget_tokens": 1024, "block_binding": {"type": "x"}}},
        "thinking.block_binding",
    ),
    (
        "thinking.signature",
        {
            "messages": [
                user("a"),
                assistant({"type": "thinking", "thinking": "t", "signature": "s"}),
                user("b"),
            ]
        },
        "messages[1].content[0].signature",
    ),
    (
        "redacted_thinking",
        {"messages": [user("a"), assistant({"type": "redacted_thinking", "data": "x"}), user("b")]},
        "messages[1].content[0]",
    ),
    (
        "citations",
        {"messages": [user("a"), assistant(text("b", citations=[{"type": "char_location"}])), user("c")]},
        "messages[1].content[0].citations",
    ),
    ("system.billing_header", {"system": [text("x-anthropic-billing-header: cc_version=1;")]}, "system[0]"),
    ("metadata", {"metadata": {"user_id": "u", "plan": "pro"}}, "metadata.plan"),
    ("tool_choice", {"tool_choice": {"type": "none"}}, "tool_choice"),
    ("top_k", {"top_k": 0}, "top_k"),
    ("tools.defer_loading", {"tools": [{**WEATHER, "defer_loading": True}]}, "tools[0].defer_loading"),
    (
        "tools.eager_input_streaming",
        {"tools": [{**WEATHER, "eager_input_streaming": True}]},
        "tools[0].eager_input_streaming",
    ),
    (
        "tools.input_examples",
        {"tools": [{**WEATHER, "input_examples": [{"city": "Oslo"}]}]},
        "tools[0].input_examples",
    ),
    (
        "tools.allowed_callers",
        {"tools": [{**WEATHER, "allowed_callers": ["direct"]}]},
        "tools[0].allowed_callers",
    ),
    (
        "tool_use.caller",
        {
            "messages": [
                user("a"),
                assistant({**tool_use("t", "f", {}), "caller": {"type": "direct"}}),
                user(tool_result("t", "ok")),
            ]
        },
        "messages[1].content[0].caller",
    ),
    (
        "toolset_name",
        {
            "messages": [
                user("a"),
                assistant(tool_use("t", "f", {})),
                user(tool_result("t", "ok", toolset_name="fs")),
            ]
        },
        "messages[2].content[0].toolset_name",
    ),
    (
        "image.transformations",
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://x/y.png"},
                        "transformations": {"oversized_image": "downsize"},
                    }
                )
            ]
        },
        "messages[0].content[0].transformations",
    ),
    ("container", {"container": "container_1"}, "container"),
    ("service_tier", {"service_tier": "auto"}, "service_tier"),
    ("speed", {"speed": "fast"}, "speed"),
    ("inference_geo", {"inference_geo": "us"}, "inference_geo"),
    ("diagnostics", {"diagnostics": {"previous_message_id": "msg_1"}}, "diagnostics"),
    ("fallbacks", {"fallbacks": "default"}, "fallbacks"),
    ("fallback_credit_token", {"fallback_credit_token": "tok"}, "fallback_credit_token"),
    ("billing_policy", {"billing_policy": {"type": "billing_policy", "bill_to": "self"}}, "billing_policy"),
    ("user_profile_id", {"user_profile_id": "up_1"}, "user_profile_id"),
    ("workspace_id", {"workspace_id": "wrkspc_1"}, "workspace_id"),
    ("mcp_servers", {"mcp_servers": []}, "mcp_servers"),
]


@pytest.mark.parametrize(("field", "fields", "path"), IGNORED_CASES, ids=[case[2] for case in IGNORED_CASES])
def test_each_ignored_field_is_accepted_and_recorded(field: str, fields: dict[str, Any], path: str) -> None:
    assert path in translate(body(**fields)).ignored


def test_every_documented_reason_is_exercised() -> None:
    from service.inbound.messages_ignored import IGNORED_FIELDS

    assert {case[0] for case in IGNORED_CASES} == set(IGNORED_FIELDS)


def test_a_reason_missing_from_the_list_is_a_programming_error() -> None:
    from service.inbound.messages_context import Translation

    with pytest.raises(KeyError):
        Translation().ignore("x", "not_a_documented_field")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "ex"}]}, "mcp_servers"),
        ({"compaction": {"type": "enabled"}}, "compaction"),
        ({"thread": {"type": "create"}}, "thread"),
    ],
)
def test_fields_that_need_anthropics_servers_are_refused(fields: dict[str, Any], param: str) -> None:
    assert refused(body(**fields), param).code == "unsupported_parameter"


def test_explicit_nulls_count_as_absent() -> None:
    request = translate(
        body(system=None, tools=None, thinking=None, metadata=None, stream=None, container=None)
    )
    assert set(request.chat) == {"model", "messages", "max_tokens"} and request.ignored == ()


def test_count_tokens_needs_no_max_tokens_and_never_streams() -> None:
    payload = body(stream=True, tools=[WEATHER], system="S")
    del payload["max_tokens"]
    chat = count_tokens_to_chat(payload)
    assert chat == {
        "model": "moonshotai/Kimi-K2.6",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER["input_schema"],
                    "description": "Weather for a city.",
                },
            }
        ],
    }
    with_budget = body(thinking={"type": "enabled", "budget_tokens": 2048})
    del with_budget["max_tokens"]
    assert count_tokens_to_chat(with_budget)["reasoning"] == {"max_tokens": 2048}
    with pytest.raises(GatewayError) as caught:
        count_tokens_to_chat({"model": "m"})
    assert caught.value.param == "messages"
