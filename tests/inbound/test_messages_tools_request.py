"""Messages request tools and tool_choice -> Chat Completions tools: custom tools, server tools refused,
long tool names aliased so the answer can undo them, tool_choice forms."""

from __future__ import annotations

from typing import Any

import pytest

from service.inbound.messages_context import chat_tool_name
from tests.inbound.support import (
    WEATHER,
    assistant,
    body,
    refused,
    tool_result,
    tool_use,
    translate,
    user,
)

LONG_NAME = "mcp__github__search_repositories_by_topic_and_language_with_pagination"


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
