"""`tools` and `tool_choice` of a Messages request -> their Chat Completions forms.

Only custom tools (an `input_schema`, no `type` or `type: "custom"`) can be honoured: the client
runs them. Anthropic's server tools run on Anthropic's servers and are refused by name.
"""

from __future__ import annotations

from typing import Any

from service.chat.validate_tools import MAX_TOOLS
from service.chat.validate_types import (
    bad_value,
    check_array,
    check_bool,
    check_enum,
    check_keys,
    check_object,
    check_str,
    missing,
    wrong_type,
)
from service.errors import invalid
from service.inbound.messages_context import Translation

TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")

_TOOL_KEYS = frozenset(
    {
        "type",
        "name",
        "description",
        "input_schema",
        "strict",
        "cache_control",
        "defer_loading",
        "eager_input_streaming",
        "input_examples",
        "allowed_callers",
    }
)
_DROPPED_TOOL_KEYS = {
    "cache_control": "cache_control",
    "defer_loading": "tools.defer_loading",
    "eager_input_streaming": "tools.eager_input_streaming",
    "input_examples": "tools.input_examples",
    "allowed_callers": "tools.allowed_callers",
}
_TOOL_CHOICE_KEYS = frozenset({"type", "name", "disable_parallel_tool_use"})


def translate_tools(value: object, t: Translation) -> tuple[list[dict[str, Any]], frozenset[str]]:
    """`tools` -> (chat function tools, the client's tool names)."""
    tools = check_array(value, "tools", max_items=MAX_TOOLS)
    out = []
    names: set[str] = set()
    for index, item in enumerate(tools):
        path = f"tools[{index}]"
        tool = check_object(item, path)
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            if type(kind) is not str:
                raise wrong_type(f"{path}.type", "a string", kind)
            raise invalid(
                f"`{path}` is Anthropic's server tool `{kind}`, which runs on Anthropic's servers; "
                "Switchyard can only offer tools the client runs (with an `input_schema`).",
                f"{path}.type",
                "unsupported_tool",
            )
        check_keys(tool, _TOOL_KEYS, path)
        for key, field in _DROPPED_TOOL_KEYS.items():
            if tool.get(key) is not None:
                t.ignore(f"{path}.{key}", field)
        name = check_str(tool.get("name"), f"{path}.name", non_empty=True)
        if name in names:
            raise bad_value(f"{path}.name", f"tool names must be unique, and {name!r} is used twice.")
        names.add(name)
        schema = tool.get("input_schema")
        if schema is None:
            raise missing(f"{path}.input_schema")
        function: dict[str, Any] = {
            "name": t.chat_name(name, f"{path}.name"),
            "parameters": check_object(schema, f"{path}.input_schema"),
        }
        description = tool.get("description")
        if description is not None:
            function["description"] = check_str(description, f"{path}.description")
        strict = tool.get("strict")
        if strict is not None:
            function["strict"] = check_bool(strict, f"{path}.strict")
        out.append({"type": "function", "function": function})
    return out, frozenset(names)


def translate_tool_choice(
    value: object, tools: frozenset[str] | None, chat: dict[str, Any], t: Translation
) -> None:
    """Set `tool_choice` (and `parallel_tool_calls`) on the chat body; `tools` None: none declared."""
    choice = check_object(value, "tool_choice")
    check_keys(choice, _TOOL_CHOICE_KEYS, "tool_choice")
    kind = check_enum(choice.get("type"), "tool_choice.type", TOOL_CHOICE_TYPES)
    name: str | None = None
    if kind == "tool":
        name = check_str(choice.get("name"), "tool_choice.name", non_empty=True)
    elif choice.get("name") is not None:
        raise bad_value("tool_choice.name", f"only a `tool` choice names a tool, not `{kind}`.")
    serial = choice.get("disable_parallel_tool_use")
    if serial is not None:
        if kind == "none":
            raise bad_value("tool_choice.disable_parallel_tool_use", "a `none` choice calls no tools.")
        check_bool(serial, "tool_choice.disable_parallel_tool_use")
    if not tools:
        if kind in ("auto", "none"):
            t.ignore("tool_choice", "tool_choice")
            return
        raise bad_value("tool_choice", f"a `{kind}` choice needs `tools`.")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif name is not None:
        if name not in tools:
            raise bad_value("tool_choice.name", f"no tool named {name!r} is declared in `tools`.")
        chat["tool_choice"] = {
            "type": "function",
            "function": {"name": t.chat_name(name, "tool_choice.name")},
        }
    if serial:
        chat["parallel_tool_calls"] = False
