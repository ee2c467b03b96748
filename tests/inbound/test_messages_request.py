"""Messages request -> Chat Completions body: each block type, tool-result placement, parameters."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import GatewayError
from service.inbound.messages_context import chat_tool_name
from service.inbound.messages_request import count_tokens_to_chat
from tests.inbound.support import (
    assistant,
    body,
    refused,
    text,
    tool_result,
    tool_use,
    translate,
    user,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4z8DwHwAFAAIB4n8vbQAAAABJRU5ErkJggg=="
LONG_NAME = "mcp__github__search_repositories_by_topic_and_language_with_pagination"


def messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return translate(payload).chat["messages"]


def test_a_plain_request_keeps_model_and_max_tokens_and_drops_nothing() -> None:
    request = translate(body(messages=[user("Hello")]))
    assert request.chat == {
        "model": "moonshotai/Kimi-K2.6",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 4096,
    }
    assert (request.model, request.stream, request.ignored, request.stop_sequences) == (
        "moonshotai/Kimi-K2.6",
        False,
        (),
        (),
    )


def test_system_string_and_text_blocks_become_one_leading_system_message() -> None:
    assert messages(body(system="Be terse."))[0] == {"role": "system", "content": "Be terse."}
    blocks = [text("One."), text("Two.", cache_control={"type": "ephemeral"})]
    request = translate(body(system=blocks))
    assert request.chat["messages"][0] == {"role": "system", "content": "One.\nTwo."}
    assert request.ignored == ("system[1].cache_control",)
    assert messages(body(system="")) == [{"role": "user", "content": "hi"}]


def test_claude_codes_billing_header_block_is_dropped_from_the_system_prompt() -> None:
    header = text("x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;")
    request = translate(body(system=[header, text("You are an agent.")]))
    assert request.chat["messages"][0] == {"role": "system", "content": "You are an agent."}
    assert request.ignored == ("system[0]",)


def test_text_blocks_stay_parts_and_a_string_stays_a_string() -> None:
    assert messages(body(messages=[user(text("a"), text("b"))])) == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_images_become_image_url_parts() -> None:
    base64_image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    chat = messages(body(messages=[user(text("What is this?"), base64_image, url_image)]))
    assert chat[0]["content"][1:] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    ("image", "param"),
    [
        ({"type": "image", "source": {"type": "file", "file_id": "file_1"}}, "messages[0].content[0].source"),
        ({"type": "image"}, "messages[0].content[0].source"),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}},
            "messages[0].content[0].source.media_type",
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}},
            "messages[0].content[0].source.data",
        ),
        ({"type": "image", "source": {"type": "url", "url": 7}}, "messages[0].content[0].source.url"),
        ({"type": "image", "source": {"type": "svg"}}, "messages[0].content[0].source.type"),
        (
            {"type": "image", "source": {"type": "url", "url": "https://x", "detail": "high"}},
            "messages[0].content[0].source.detail",
        ),
    ],
)
def test_bad_images_are_refused_at_their_path(image: dict[str, Any], param: str) -> None:
    refused(body(messages=[user(image)]), param)


def test_tool_use_becomes_tool_calls_with_compact_json_arguments() -> None:
    arguments = {"path": "/tmp/é.txt", "lines": [1, 2], "opts": {"deep": True, "none": None}}
    chat = messages(
        body(messages=[user("go"), assistant(text("Reading."), tool_use("toolu_1", "Read", arguments))])
    )
    assert chat[1] == {
        "role": "assistant",
        "content": "Reading.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {
                    "name": "Read",
                    "arguments": '{"path":"/tmp/é.txt","lines":[1,2],"opts":{"deep":true,"none":null}}',
                },
            }
        ],
    }


def test_tool_results_follow_their_call_and_the_turns_text_comes_after_them() -> None:
    history = [
        user("Weather in Paris and Lyon?"),
        assistant(
            tool_use("call_a", "weather", {"city": "Paris"}), tool_use("call_b", "weather", {"city": "Lyon"})
        ),
        user(
            text("Here you go."),
            tool_result("call_b", "12 C"),
            text("And be brief."),
            tool_result("call_a", [text("18 C"), text("cloudy")]),
        ),
    ]
    chat = messages(body(messages=history))
    assert [m["role"] for m in chat] == ["user", "assistant", "tool", "tool", "user"]
    assert chat[2:] == [
        {"role": "tool", "tool_call_id": "call_b", "content": "12 C"},
        {"role": "tool", "tool_call_id": "call_a", "content": "18 C\ncloudy"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Here you go."}, {"type": "text", "text": "And be brief."}],
        },
    ]
    assert "content" not in chat[1]


def test_images_returned_by_a_tool_go_first_into_the_following_user_message() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}
    history = [
        user("Screenshot please."),
        assistant(tool_use("call_1", "screenshot", {})),
        user(tool_result("call_1", [text("Captured."), image]), text("What do you see?")),
    ]
    chat = messages(body(messages=history))
    assert chat[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Captured."}
    assert chat[3]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}},
        {"type": "text", "text": "What do you see?"},
    ]


def test_tool_result_errors_and_empty_results() -> None:
    history = [
        user("Run both."),
        assistant(tool_use("c1", "bash", {"cmd": "false"}), tool_use("c2", "bash", {"cmd": "true"})),
        user(tool_result("c1", "exit status 1", is_error=True), tool_result("c2", is_error=False)),
    ]
    chat = messages(body(messages=history))
    assert chat[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "Error: exit status 1"},
        {"role": "tool", "tool_call_id": "c2", "content": ""},
    ]


@pytest.mark.parametrize(
    ("history", "param"),
    [
        (
            [user("x"), assistant(tool_use("c1", "f", {})), user(tool_result("c9", "?"))],
            "messages[2].content[0].tool_use_id",
        ),
        (
            [
                user("x"),
                assistant(tool_use("c1", "f", {})),
                user(tool_result("c1", "a"), tool_result("c1", "b")),
            ],
            "messages[2].content[1].tool_use_id",
        ),
        ([user(tool_result("c1", "?"))], "messages[0].content[0].tool_use_id"),
        (
            [user("x"), assistant(tool_use("c1", "f", {})), user(tool_result("c1", 5))],
            "messages[2].content[0].content",
        ),
        (
            [user("x"), assistant(tool_use("c1", "f", {})), user(tool_result("c1", [{"type": "document"}]))],
            "messages[2].content[0].content[0].type",
        ),
        (
            [user("x"), assistant(tool_use("c1", "f", {})), user(tool_result("c1", "a", is_error="yes"))],
            "messages[2].content[0].is_error",
        ),
        ([user("x"), assistant(tool_use("c1", "f", []))], "messages[1].content[0].input"),
        ([user("x"), assistant(tool_use("", "f", {}))], "messages[1].content[0].id"),
        ([user("x"), assistant(tool_use("c1", "", {}))], "messages[1].content[0].name"),
        (
            [user("x"), assistant(tool_use("c1", "f", {}), tool_use("c1", "g", {}))],
            "messages[1].content[1].id",
        ),
        ([user(tool_use("c1", "f", {}))], "messages[0].content[0].type"),
        ([user("x"), assistant(tool_result("c1", "?"))], "messages[1].content[0].type"),
        ([user({"type": "thinking", "thinking": "hm", "signature": ""})], "messages[0].content[0].type"),
    ],
)
def test_misplaced_tool_blocks_are_refused(history: list[dict[str, Any]], param: str) -> None:
    refused(body(messages=history), param)


def test_earlier_thinking_becomes_reasoning_content_and_redacted_thinking_is_dropped() -> None:
    history = [
        user("2+2?"),
        assistant(
            {"type": "thinking", "thinking": "Add them.", "signature": "EqQBCg"},
            {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
            {"type": "thinking", "thinking": "It is 4.", "signature": ""},
            text("4"),
        ),
        user("Thanks"),
    ]
    request = translate(body(messages=history))
    assert request.chat["messages"][1] == {
        "role": "assistant",
        "content": "4",
        "reasoning_content": "Add them.\nIt is 4.",
    }
    assert request.ignored == (
        "messages[1].content[0].signature",
        "messages[1].content[1]",
        "messages[1].content[2].signature",
    )


def test_an_assistant_turn_with_only_thinking_has_empty_content() -> None:
    chat = messages(
        body(
            messages=[
                user("a"),
                assistant({"type": "thinking", "thinking": "hm", "signature": ""}),
                user("b"),
            ]
        )
    )
    assert chat[1] == {"role": "assistant", "content": "", "reasoning_content": "hm"}


def test_consecutive_turns_of_one_role_are_combined_as_anthropic_does() -> None:
    history = [
        user("a"),
        user(text("b")),
        assistant("c"),
        assistant(tool_use("t1", "f", {"x": 1})),
        user(tool_result("t1", "done")),
        user("d"),
    ]
    chat = messages(body(messages=history))
    assert chat == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": "c",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
        {"role": "user", "content": [{"type": "text", "text": "d"}]},
    ]


def test_mid_conversation_system_messages_stay_in_place() -> None:
    history = [
        user("a"),
        {"role": "system", "content": [text("Agents: Explore, Plan.")]},
        assistant(tool_use("t1", "Read", {})),
        {"role": "system", "content": "Reminder."},
        user(tool_result("t1", "file text")),
    ]
    chat = messages(body(system="Top.", messages=history))
    assert [(m["role"], m.get("content")) for m in chat] == [
        ("system", "Top."),
        ("user", "a"),
        ("system", "Agents: Explore, Plan."),
        ("assistant", None),
        ("system", "Reminder."),
        ("tool", "file text"),
    ]


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("document", {"source": {"type": "text", "media_type": "text/plain", "data": "x"}}),
        ("search_result", {"source": "s", "title": "t", "content": [text("x")]}),
        ("server_tool_use", {"id": "srvtoolu_1", "name": "web_search", "input": {}}),
        ("web_search_tool_result", {"tool_use_id": "srvtoolu_1", "content": []}),
        ("container_upload", {"file_id": "file_1"}),
        ("mcp_tool_use", {}),
    ],
)
def test_blocks_that_need_anthropics_servers_are_refused_by_name(kind: str, extra: dict[str, Any]) -> None:
    err = refused(body(messages=[user({"type": kind, **extra})]), "messages[0].content[0].type")
    assert f"`{kind}`" in err.message
    assert err.code == "unsupported_content_block"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ([], None),
        (body(messages=[user({"type": "hologram"})]), "messages[0].content[0].type"),
        (body(messages=[user({"text": "no type"})]), "messages[0].content[0].type"),
        (body(messages=[user(text("x", colour="red"))]), "messages[0].content[0].colour"),
        (body(messages=[{"role": "user", "content": "x", "name": "bob"}]), "messages[0].name"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0].role"),
        (body(messages=[{"content": "x"}]), "messages[0].role"),
        (body(messages=[{"role": "user"}]), "messages[0].content"),
        (body(messages=[{"role": "user", "content": []}]), "messages[0].content"),
        (body(messages=[{"role": "user", "content": 3}]), "messages[0].content"),
        (body(messages=[user(text(None))]), "messages[0].content[0].text"),
        (body(messages=[]), "messages"),
        (body(messages="hi"), "messages"),
        (body(system=[{"type": "image"}]), "system[0].type"),
        (body(system=5), "system"),
        ({"max_tokens": 5, "messages": [user("x")]}, "model"),
        (body(model=""), "model"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        (body(frobnicate=True), "frobnicate"),
    ],
)
def test_malformed_requests_are_refused_at_the_offending_path(payload: object, param: str | None) -> None:
    refused(payload, param)


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


WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_custom_tools_become_function_tools() -> None:
    strict_tool = {**WEATHER, "name": "strict_weather", "strict": True}
    request = translate(body(tools=[WEATHER, strict_tool]))
    assert request.chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city.",
            },
        },
        {
            "type": "function",
            "function": {
                "name": "strict_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city.",
                "strict": True,
            },
        },
    ]
    assert "tools" not in translate(body(tools=[])).chat


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}], "tools[0].type"),
        ([{"type": "bash_20250124", "name": "bash"}], "tools[0].type"),
        ([{"name": "f"}], "tools[0].input_schema"),
        ([{"name": "f", "input_schema": "object"}], "tools[0].input_schema"),
        ([{"name": "", "input_schema": {}}], "tools[0].name"),
        ([WEATHER, WEATHER], "tools[1].name"),
        ([{**WEATHER, "colour": "red"}], "tools[0].colour"),
        ([{**WEATHER, "strict": "yes"}], "tools[0].strict"),
        ([WEATHER] * 129, "tools"),
    ],
)
def test_bad_or_server_side_tools_are_refused(tools: list[dict[str, Any]], param: str) -> None:
    refused(body(tools=tools), param)


def test_server_tools_are_refused_by_name() -> None:
    err = refused(body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type")
    assert "web_search_20250305" in err.message and err.code == "unsupported_tool"


def test_long_tool_names_get_a_stable_alias_the_answer_can_undo() -> None:
    tool = {**WEATHER, "name": LONG_NAME}
    history = [
        user("find"),
        assistant(tool_use("t1", LONG_NAME, {"q": "x"})),
        user(tool_result("t1", "none")),
    ]
    request = translate(body(tools=[tool], messages=history, tool_choice={"type": "tool", "name": LONG_NAME}))
    alias = request.chat["tools"][0]["function"]["name"]
    assert alias == chat_tool_name(LONG_NAME) and len(alias) == 64 and alias.startswith("mcp__github__search")
    assert request.chat["messages"][1]["tool_calls"][0]["function"]["name"] == alias
    assert request.chat["tool_choice"] == {"type": "function", "function": {"name": alias}}
    assert dict(request.tool_names) == {alias: LONG_NAME}
    assert request.client_tool_name(alias) == LONG_NAME
    assert request.client_tool_name("Read") == "Read"
    odd = chat_tool_name("odd.name/with spaces")
    assert odd.startswith("odd_name_with_spaces_") and len(odd) == len("odd_name_with_spaces_") + 8
    assert chat_tool_name("odd.name/with spaces") == odd != chat_tool_name("odd.name/with space")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
        ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
    ],
)
def test_tool_choice_maps_to_chat_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    chat = translate(body(tools=[WEATHER], tool_choice=choice)).chat
    assert {k: chat[k] for k in ("tool_choice", "parallel_tool_calls") if k in chat} == expected


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "other"}}, "tool_choice.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "auto", "name": "get_weather"}}, "tool_choice.name"),
        ({"tools": [WEATHER], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"tools": [WEATHER], "tool_choice": "auto"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "none", "disable_parallel_tool_use": True}},
            "tool_choice.disable_parallel_tool_use",
        ),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"tool_choice": {"type": "tool", "name": "get_weather"}}, "tool_choice"),
    ],
)
def test_bad_tool_choices_are_refused(fields: dict[str, Any], param: str) -> None:
    refused(body(**fields), param)


def test_an_auto_tool_choice_without_tools_is_dropped() -> None:
    request = translate(body(tool_choice={"type": "auto"}))
    assert "tool_choice" not in request.chat and request.ignored == ("tool_choice",)


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
