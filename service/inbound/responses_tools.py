"""The Responses API's `tools`, `tool_choice` and `text` as Chat Completions fields.

Responses declares function tools flat (`{"type": "function", "name", "parameters", ...}`); Chat
Completions nests them under `function`. A `namespace` tool groups function tools (Codex sends its
sub-agent tools that way): each member becomes a chat function named `<namespace>__<name>`, and
`ToolSet.namespaced` maps that name back so answers carry `namespace` and `name` as OpenAI would.
Tools that run on OpenAI's side (web search, file search, code interpreter, ...) have no equivalent
behind a Chat Completions upstream and are refused, except `web_search`, which Codex CLI declares on
every request whatever the model (see IGNORED_FIELDS in responses_request).

`strict` is passed only when the client set it: Responses defaults it to true, but strict decoding
on an open-model engine rejects schemas that are not strict-mode clean, so it is not forced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.chat.validate_tools import MAX_NAME_CHARS, MAX_TOOLS, check_name
from service.chat.validate_types import (
    check_array,
    check_object,
    check_str,
    missing,
    not_one_of,
    too_many,
    wrong_type,
)
from service.errors import GatewayError, invalid

NAMESPACE_SEPARATOR = "__"

TOOL_CHOICE_MODES = ("none", "auto", "required")
ALLOWED_TOOLS_MODES = ("auto", "required")
TEXT_FORMAT_TYPES = ("text", "json_object", "json_schema")
VERBOSITIES = ("low", "medium", "high")

# Built-in tools Codex CLI sends by default; dropped rather than refused so Codex works unchanged.
CLIENT_DEFAULT_TOOLS = frozenset({"web_search"})

UNSUPPORTED = "unsupported_value"


def unsupported(param: str, message: str) -> GatewayError:
    return invalid(message, param, UNSUPPORTED)


@dataclass(frozen=True, slots=True)
class ToolSet:
    """The chat form of the request's tools."""

    chat_tools: tuple[dict[str, Any], ...] = ()
    names: frozenset[str] = frozenset()  # chat function names, namespaced ones flattened
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # chat name -> (namespace, name)
    dropped: tuple[str, ...] = ()  # built-in tool types dropped, in order, without repeats


def flat_name(namespace: str, name: str) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def convert_tools(value: object) -> ToolSet:
    """Check `tools` and build their chat form."""
    tools = check_array(value, "tools")
    chat: list[dict[str, Any]] = []
    namespaced: dict[str, tuple[str, str]] = {}
    dropped: list[str] = []
    seen: dict[str, str] = {}
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        spec = check_object(tool, where)
        kind = spec.get("type")
        if kind == "function":
            name = check_name(spec.get("name"), f"{where}.name")
            _add(chat, seen, name, _function(spec, where), f"{where}.name")
        elif kind == "namespace":
            namespace = check_name(spec.get("name"), f"{where}.name")
            members = check_array(spec.get("tools"), f"{where}.tools", non_empty=True)
            for position, member in enumerate(members):
                inner = f"{where}.tools[{position}]"
                member_spec = check_object(member, inner)
                if member_spec.get("type") != "function":
                    raise _unsupported_tool(member_spec.get("type"), f"{inner}.type")
                name = check_name(member_spec.get("name"), f"{inner}.name")
                chat_name = flat_name(namespace, name)
                if len(chat_name) > MAX_NAME_CHARS:
                    raise invalid(
                        f"Invalid '{inner}.name': '{namespace}' and '{name}' together exceed "
                        f"{MAX_NAME_CHARS} characters, the limit of a function name.",
                        f"{inner}.name",
                        "invalid_value",
                    )
                _add(chat, seen, chat_name, _function(member_spec, inner, chat_name), f"{inner}.name")
                namespaced[chat_name] = (namespace, name)
        elif kind in CLIENT_DEFAULT_TOOLS:
            if kind not in dropped:
                dropped.append(kind)
        else:
            raise _unsupported_tool(kind, f"{where}.type")
    if len(chat) > MAX_TOOLS:
        raise too_many("tools", MAX_TOOLS, len(chat))
    return ToolSet(tuple(chat), frozenset(seen), namespaced, tuple(dropped))


def _add(
    chat: list[dict[str, Any]], seen: dict[str, str], name: str, tool: dict[str, Any], param: str
) -> None:
    if name in seen:
        raise invalid(
            f"Invalid '{param}': the function name '{name}' is declared twice (first at {seen[name]}).",
            param,
            "invalid_value",
        )
    seen[name] = param
    chat.append(tool)


def _function(spec: dict[str, Any], where: str, chat_name: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": chat_name or spec["name"]}
    description = spec.get("description")
    if description is not None:
        function["description"] = check_str(description, f"{where}.description")
    parameters = spec.get("parameters")
    if parameters is not None:
        function["parameters"] = check_object(parameters, f"{where}.parameters")
    strict = spec.get("strict")
    if strict is not None:
        if type(strict) is not bool:
            raise wrong_type(f"{where}.strict", "a boolean", strict)
        function["strict"] = strict
    return {"type": "function", "function": function}


def _unsupported_tool(kind: object, param: str) -> GatewayError:
    if kind is None:
        return missing(param)
    if type(kind) is not str:
        return wrong_type(param, "a string", kind)
    return unsupported(
        param,
        f"The '{kind}' tool is not supported: Switchyard serves open models, which can only call "
        "function tools that the client runs. Declare it as a function tool instead.",
    )


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """The chat `tool_choice` (None: leave it out) and, for `allowed_tools`, the tools kept."""

    chat: str | dict[str, Any] | None
    tools: tuple[dict[str, Any], ...]


def convert_tool_choice(value: object, tools: ToolSet) -> ToolChoice:
    """Check `tool_choice` against the declared tools and build its chat form."""
    if type(value) is str:
        if value not in TOOL_CHOICE_MODES:
            raise not_one_of("tool_choice", value, TOOL_CHOICE_MODES)
        if not tools.chat_tools:
            if value == "required":
                raise invalid(
                    "Invalid value for 'tool_choice': 'required' needs at least one function tool "
                    "in 'tools'.",
                    "tool_choice",
                    "invalid_value",
                )
            # Without tools, "auto" and "none" both mean no call: the chat validator refuses them alone.
            return ToolChoice(None, tools.chat_tools)
        return ToolChoice(value, tools.chat_tools)
    choice = check_object(value, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        name = required_str(choice, "name", "tool_choice.name")
        _declared(name, tools, "tool_choice.name")
        return ToolChoice({"type": "function", "function": {"name": name}}, tools.chat_tools)
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ALLOWED_TOOLS_MODES:
            if mode is None:
                raise missing("tool_choice.mode")
            raise not_one_of("tool_choice.mode", mode, ALLOWED_TOOLS_MODES)
        allowed = check_array(choice.get("tools"), "tool_choice.tools", non_empty=True)
        keep: set[str] = set()
        for index, entry in enumerate(allowed):
            where = f"tool_choice.tools[{index}]"
            spec = check_object(entry, where)
            if spec.get("type") != "function":
                raise _unsupported_tool(spec.get("type"), f"{where}.type")
            name = required_str(spec, "name", f"{where}.name")
            _declared(name, tools, f"{where}.name")
            keep.add(name)
        kept = tuple(t for t in tools.chat_tools if t["function"]["name"] in keep)
        return ToolChoice(mode, kept)
    if kind is None:
        raise missing("tool_choice.type")
    raise _unsupported_tool(kind, "tool_choice.type")


def required_str(obj: dict[str, Any], key: str, param: str) -> str:
    value = obj.get(key)
    if value is None:
        raise missing(param)
    return check_str(value, param, non_empty=True)


def _declared(name: str, tools: ToolSet, param: str) -> None:
    if name not in tools.names:
        raise invalid(
            f"Invalid value for '{param}': no function named '{name[:64]}' is declared in 'tools'.",
            param,
            "invalid_value",
        )


@dataclass(frozen=True, slots=True)
class TextConfig:
    response_format: dict[str, Any] | None
    verbosity: str | None


def convert_text(value: object) -> TextConfig:
    """Check `text` (`format`, `verbosity`); `format` becomes the chat `response_format`."""
    text = check_object(value, "text")
    verbosity = text.get("verbosity")
    if verbosity is not None and verbosity not in VERBOSITIES:
        if type(verbosity) is not str:
            raise wrong_type("text.verbosity", "a string", verbosity)
        raise not_one_of("text.verbosity", verbosity, VERBOSITIES)
    spec = text.get("format")
    if spec is None:
        return TextConfig(None, verbosity)
    fmt = check_object(spec, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        # Plain text is what the upstream does anyway; sending it would only narrow the routes.
        return TextConfig(None, verbosity)
    if kind == "json_object":
        return TextConfig({"type": "json_object"}, verbosity)
    if kind == "json_schema":
        schema_spec: dict[str, Any] = {"name": check_name(fmt.get("name"), "text.format.name")}
        if fmt.get("schema") is None:
            raise missing("text.format.schema")
        schema_spec["schema"] = check_object(fmt.get("schema"), "text.format.schema")
        description = fmt.get("description")
        if description is not None:
            schema_spec["description"] = check_str(description, "text.format.description")
        strict = fmt.get("strict")
        if strict is not None:
            if type(strict) is not bool:
                raise wrong_type("text.format.strict", "a boolean", strict)
            schema_spec["strict"] = strict
        return TextConfig({"type": "json_schema", "json_schema": schema_spec}, verbosity)
    if kind is None:
        raise missing("text.format.type")
    if type(kind) is not str:
        raise wrong_type("text.format.type", "a string", kind)
    raise not_one_of("text.format.type", kind, TEXT_FORMAT_TYPES)
