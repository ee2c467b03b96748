"""Responses requests' tools and tool_choice as Chat Completions tools: function and namespace tools,
the built-in tools Codex sends, and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from tests.inbound.responses_request_support import LOOKUP, call, output, refused, translate, user


def test_function_tools_are_nested_and_strict_kept_only_when_set() -> None:
    request = translate(
        {
            "input": "x",
            "tools": [
                {
                    "type": "function",
                    "name": "a",
                    "description": "A.",
                    "parameters": {"type": "object"},
                    "strict": True,
                },
                {"type": "function", "name": "b", "parameters": None, "strict": None, "defer_loading": False},
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert request.chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "a", "description": "A.", "parameters": {"type": "object"}, "strict": True},
        },
        {"type": "function", "function": {"name": "b"}},
    ]
    assert request.chat["tool_choice"] == "required"
    assert request.chat["parallel_tool_calls"] is False


def test_namespace_tools_are_flattened_and_mapped_back() -> None:
    request = translate(
        {
            "tools": [
                {
                    "type": "namespace",
                    "name": "agents",
                    "description": "Sub-agents.",
                    "tools": [
                        {
                            "type": "function",
                            "name": "spawn",
                            "parameters": {"type": "object"},
                            "strict": False,
                        }
                    ],
                }
            ],
            "input": [user("x"), {**call("c1", "spawn"), "namespace": "agents"}, output("c1")],
        }
    )
    assert request.chat["tools"][0]["function"]["name"] == "agents__spawn"
    assert request.tool_namespaces == {"agents__spawn": ("agents", "spawn")}
    assert request.chat["messages"][1]["tool_calls"][0]["function"]["name"] == "agents__spawn"


def test_codex_default_web_search_is_dropped_and_reported() -> None:
    request = translate(
        {"input": "x", "tools": [LOOKUP, {"type": "web_search", "external_web_access": False}]}
    )
    assert [t["function"]["name"] for t in request.chat["tools"]] == ["lookup"]
    assert request.ignored == ("tools.web_search",)


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "web_search_preview"},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"},
        {"type": "computer"},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "x", "server_url": "https://x"},
        {"type": "local_shell"},
        {"type": "shell"},
        {"type": "apply_patch"},
        {"type": "custom", "name": "apply_patch"},
        {"type": "tool_search"},
    ],
)
def test_hosted_tools_are_refused_by_name(tool: dict[str, Any]) -> None:
    error = refused({"input": "x", "tools": [LOOKUP, tool]})
    assert (error.param, error.code) == ("tools[1].type", "unsupported_value")
    assert f"'{tool['type']}'" in error.message


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "function", "name": "bad name"}], "tools[0].name"),
        ([{"type": "function"}], "tools[0].name"),
        ([LOOKUP, LOOKUP], "tools[1].name"),
        ([{"type": "function", "name": "a", "parameters": "x"}], "tools[0].parameters"),
        ([{"type": "function", "name": "a", "strict": "yes"}], "tools[0].strict"),
        ([{"name": "a"}], "tools[0].type"),
        ([{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}], "tools[0].tools[0].type"),
        (
            [{"type": "namespace", "name": "n" * 40, "tools": [{"type": "function", "name": "f" * 30}]}],
            "tools[0].tools[0].name",
        ),
        ({"type": "function"}, "tools"),
    ],
)
def test_bad_tools_are_refused_with_their_path(tools: object, param: str) -> None:
    assert refused({"input": "x", "tools": tools}).param == param


def test_tool_choice_forms() -> None:
    named = translate(
        {"input": "x", "tools": [LOOKUP], "tool_choice": {"type": "function", "name": "lookup"}}
    )
    assert named.chat["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert named.echo["tool_choice"] == {"type": "function", "name": "lookup"}
    other = {"type": "function", "name": "other", "parameters": {"type": "object"}}
    allowed = translate(
        {
            "input": "x",
            "tools": [LOOKUP, other],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "other"}],
            },
        }
    )
    assert [t["function"]["name"] for t in allowed.chat["tools"]] == ["other"]
    assert allowed.chat["tool_choice"] == "required"
    for mode in ("auto", "none"):
        assert translate({"input": "x", "tools": [LOOKUP], "tool_choice": mode}).chat["tool_choice"] == mode
        assert "tool_choice" not in translate({"input": "x", "tool_choice": mode}).chat  # no tools: no choice


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([LOOKUP], {"type": "function", "name": "nope"}, "tool_choice.name"),
        ([LOOKUP], {"type": "function"}, "tool_choice.name"),
        ([LOOKUP], {"type": "file_search"}, "tool_choice.type"),
        ([LOOKUP], {"type": "mcp", "server_label": "x"}, "tool_choice.type"),
        ([LOOKUP], "sometimes", "tool_choice"),
        ([], "required", "tool_choice"),
        ([LOOKUP], {"type": "allowed_tools", "mode": "any", "tools": []}, "tool_choice.mode"),
        (
            [LOOKUP],
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "x"}]},
            "tool_choice.tools[0].name",
        ),
        (
            [LOOKUP],
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "web_search"}]},
            "tool_choice.tools[0].type",
        ),
    ],
)
def test_bad_tool_choice_is_refused(tools: list[Any], choice: object, param: str) -> None:
    body: dict[str, Any] = {"input": "x", "tool_choice": choice}
    if tools:
        body["tools"] = tools
    assert refused(body).param == param
