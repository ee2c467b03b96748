"""Checks for `tools`, `tool_choice` and `response_format`."""

from __future__ import annotations

import re
from collections.abc import Mapping

from service.chat.validate_types import (
    INVALID_VALUE,
    check_keys,
    empty_array,
    empty_string,
    missing,
    not_one_of,
    too_long,
    too_many,
    wrong_type,
)
from service.errors import invalid

MAX_TOOLS = 128
MAX_NAME_CHARS = 64

# OpenAI's rule for function and json_schema names.
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")

TOOL_CHOICE_MODES = ("none", "auto", "required")
RESPONSE_FORMAT_KINDS = ("text", "json_object", "json_schema", "grammar", "structural_tag")

_TOOL_KEYS = frozenset({"type", "function"})
_FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})
_NAMED_CHOICE_KEYS = frozenset({"type", "function"})
_NAMED_CHOICE_FUNCTION_KEYS = frozenset({"name"})
_PLAIN_FORMAT_KEYS = frozenset({"type"})
_JSON_SCHEMA_FORMAT_KEYS = frozenset({"type", "json_schema"})
_JSON_SCHEMA_KEYS = frozenset({"name", "schema", "strict", "description"})


def check_name(value: object, param: str) -> str:
    """A function (or schema) name as OpenAI takes it; the Responses translator checks its names here too."""
    if value is None:
        raise missing(param)
    if type(value) is not str:
        raise wrong_type(param, "a string", value)
    if not value:
        raise empty_string(param)
    if len(value) > MAX_NAME_CHARS:
        raise too_long(param, MAX_NAME_CHARS, len(value))
    if _NAME.fullmatch(value) is None:
        raise invalid(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
            "pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            param,
            INVALID_VALUE,
        )
    return value


def _check_type_field(obj: Mapping[str, object], param: str, allowed: tuple[str, ...]) -> str:
    kind = obj.get("type")
    if isinstance(kind, str) and kind in allowed:
        return kind
    if kind is None:
        raise missing(param)
    if type(kind) is not str:
        raise wrong_type(param, "a string", kind)
    raise not_one_of(param, kind, allowed)


def check_tools(value: object) -> frozenset[str]:
    """Check `tools`; returns the function names declared."""
    if not isinstance(value, list):
        raise wrong_type("tools", "an array", value)
    if not value:
        raise empty_array("tools")
    if len(value) > MAX_TOOLS:
        raise too_many("tools", MAX_TOOLS, len(value))
    names = []
    for index, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise wrong_type(f"tools[{index}]", "an object", tool)
        check_keys(tool, _TOOL_KEYS, f"tools[{index}]")
        _check_type_field(tool, f"tools[{index}].type", ("function",))
        function = tool.get("function")
        if function is None:
            raise missing(f"tools[{index}].function")
        if not isinstance(function, dict):
            raise wrong_type(f"tools[{index}].function", "an object", function)
        check_keys(function, _FUNCTION_KEYS, f"tools[{index}].function")
        names.append(check_name(function.get("name"), f"tools[{index}].function.name"))
        description = function.get("description")
        if description is not None and type(description) is not str:
            raise wrong_type(f"tools[{index}].function.description", "a string", description)
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise wrong_type(f"tools[{index}].function.parameters", "an object", parameters)
        strict = function.get("strict")
        if strict is not None and type(strict) is not bool:
            raise wrong_type(f"tools[{index}].function.strict", "a boolean", strict)
    return frozenset(names)


def check_tool_choice(value: object) -> tuple[str, str | None]:
    """Check `tool_choice`; returns (mode, function name) with mode "function" for a named tool."""
    if type(value) is str:
        if value in TOOL_CHOICE_MODES:
            return value, None
        raise not_one_of("tool_choice", value, TOOL_CHOICE_MODES)
    if not isinstance(value, dict):
        raise wrong_type("tool_choice", "a string or an object", value)
    check_keys(value, _NAMED_CHOICE_KEYS, "tool_choice")
    _check_type_field(value, "tool_choice.type", ("function",))
    function = value.get("function")
    if function is None:
        raise missing("tool_choice.function")
    if not isinstance(function, dict):
        raise wrong_type("tool_choice.function", "an object", function)
    check_keys(function, _NAMED_CHOICE_FUNCTION_KEYS, "tool_choice.function")
    name = function.get("name")
    if name is None:
        raise missing("tool_choice.function.name")
    if type(name) is not str:
        raise wrong_type("tool_choice.function.name", "a string", name)
    if not name:
        raise empty_string("tool_choice.function.name")
    return "function", name


def check_response_format(value: object) -> str:
    """Check `response_format`; returns its kind."""
    if not isinstance(value, dict):
        raise wrong_type("response_format", "an object", value)
    kind = _check_type_field(value, "response_format.type", RESPONSE_FORMAT_KINDS)
    if kind == "text" or kind == "json_object":
        check_keys(value, _PLAIN_FORMAT_KEYS, "response_format")
    elif kind == "json_schema":
        check_keys(value, _JSON_SCHEMA_FORMAT_KEYS, "response_format")
        _check_json_schema(value.get("json_schema"))
    # grammar and structural_tag carry engine-specific keys that the engine itself checks.
    return kind


def _check_json_schema(spec: object) -> None:
    if spec is None:
        raise missing("response_format.json_schema")
    if not isinstance(spec, dict):
        raise wrong_type("response_format.json_schema", "an object", spec)
    check_keys(spec, _JSON_SCHEMA_KEYS, "response_format.json_schema")
    check_name(spec.get("name"), "response_format.json_schema.name")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise wrong_type("response_format.json_schema.schema", "an object", schema)
    strict = spec.get("strict")
    if strict is not None and type(strict) is not bool:
        raise wrong_type("response_format.json_schema.strict", "a boolean", strict)
    description = spec.get("description")
    if description is not None and type(description) is not str:
        raise wrong_type("response_format.json_schema.description", "a string", description)
