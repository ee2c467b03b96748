"""Messages request -> Chat Completions body: each block type, tool-result placement, parameters
(tools and tool_choice in test_messages_tools_request.py, parameters and dropped fields in
test_messages_fields_request.py)."""

from __future__ import annotations

from typing import Any

import pytest

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
from tests.inbound.support import (
    chat_messages as messages,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4z8DwHwAFAAIB4n8vbQAAAABJRU5ErkJggg=="


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
