"""An Anthropic Messages request (`POST /v1/messages`) -> one Chat Completions body.

`messages_to_chat(body)` checks the decoded JSON and translates it; the first problem raises
`GatewayError(400, invalid_request_error)` whose `param` is the path of the offending value
(``messages[2].content[0].source``). Fields accepted and dropped are listed, with the reason for
each, in `service.inbound.messages_ignored.IGNORED_FIELDS`; every dropped path of one request is
in `MessagesRequest.ignored`. Fields whose meaning cannot be honoured are refused by name.

The chat body passes `service.chat.validate.validate_chat_request`, except for one field the
chat validator does not know yet: `reasoning` (OpenRouter's object: `{"max_tokens": N}`,
`{"enabled": false}`, `{"enabled": true, "effort": E}`), which the gateway maps per model.
Thinking maps as: `enabled` + `budget_tokens` -> `{"max_tokens": N}`; `disabled` ->
`{"enabled": false}`; `adaptive` (what Claude Code sends) -> `{"enabled": true}` plus
`output_config.effort` when given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from service.chat.validate import MAX_MODEL_CHARS, MAX_STOP_CHARS, MAX_STOP_SEQUENCES
from service.chat.validate_messages import MAX_MESSAGES
from service.chat.validate_params import MAX_OUTPUT_TOKENS
from service.chat.validate_types import (
    INVALID_TYPE,
    bad_value,
    check_array,
    check_bool,
    check_enum,
    check_int,
    check_keys,
    check_number,
    check_object,
    check_str,
    missing,
    too_many,
    unknown,
)
from service.errors import invalid
from service.inbound.messages_content import translate_messages, translate_system
from service.inbound.messages_context import Translation
from service.inbound.messages_tools import translate_tool_choice, translate_tools

__all__ = ["MessagesRequest", "count_tokens_to_chat", "messages_to_chat"]

THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
MIN_THINKING_BUDGET = 1024  # Anthropic's own minimum for budget_tokens

# Top-level fields dropped whatever their value (the reasons are in IGNORED_FIELDS).
_DROPPED = frozenset(
    {
        "cache_control",
        "context_management",
        "container",
        "service_tier",
        "speed",
        "inference_geo",
        "diagnostics",
        "fallbacks",
        "fallback_credit_token",
        "billing_policy",
        "user_profile_id",
        "workspace_id",
    }
)
_REFUSED = {
    "mcp_servers": "Anthropic's MCP connector is not supported; run the MCP server on the client and "
    "declare its tools in `tools`.",
    "compaction": "server-side compaction is not supported; the conversation is forwarded as sent.",
    "thread": "server-held conversation state is not supported; send the whole conversation in `messages`.",
}
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
        "stream",
        "output_config",
        "output_format",
        # Switchyard's routing extensions, passed to the chat request as they are.
        "provider",
        "models",
    }
)
_THINKING_KEYS = {
    "enabled": frozenset({"type", "budget_tokens", "display", "block_binding"}),
    "disabled": frozenset({"type"}),
    "adaptive": frozenset({"type", "display"}),
    "between_tools": frozenset({"type"}),
}
_OUTPUT_CONFIG_KEYS = frozenset({"effort", "format", "task_budget"})
_FORMAT_KEYS = frozenset({"type", "schema"})
_RESPONSE_FORMAT_NAME = "output"


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A translated Messages request, and what its answer's translation needs to know."""

    chat: dict[str, Any]  # the Chat Completions body
    model: str  # as the client sent it
    stream: bool
    ignored: tuple[str, ...]  # paths of the fields accepted and dropped
    stop_sequences: tuple[str, ...] = ()
    # Chat function name -> the client's tool name, for names Chat Completions does not allow.
    tool_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def client_tool_name(self, chat_name: str) -> str:
        return self.tool_names.get(chat_name, chat_name)


def messages_to_chat(body: object) -> MessagesRequest:
    """Check and translate a `POST /v1/messages` body; GatewayError(400) on its first problem."""
    chat, t, stops = _translate(body, count_only=False)
    return MessagesRequest(
        chat=chat,
        model=chat["model"],
        stream=chat.get("stream") is True,
        ignored=tuple(t.ignored),
        stop_sequences=stops,
        tool_names=MappingProxyType(t.aliases()),
    )


def count_tokens_to_chat(body: object) -> dict[str, Any]:
    """The same translation for `POST /v1/messages/count_tokens`, where `max_tokens` is optional."""
    chat, _, _ = _translate(body, count_only=True)
    return chat


def _translate(body: object, *, count_only: bool) -> tuple[dict[str, Any], Translation, tuple[str, ...]]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, INVALID_TYPE)
    t = Translation()
    present: dict[str, Any] = {}
    for key, value in body.items():
        if key in _HANDLED:
            if value is not None:
                present[key] = value
        elif key in _DROPPED:
            if value is not None:
                t.ignore(key, key)
        elif key in _REFUSED:
            if key == "mcp_servers" and value == []:
                t.ignore(key, key)
            elif value is not None:
                raise invalid(f"`{key}`: {_REFUSED[key]}", key, "unsupported_parameter")
        else:
            raise unknown(key)

    if "model" not in present:
        raise missing("model")
    chat: dict[str, Any] = {
        "model": check_str(present["model"], "model", non_empty=True, max_len=MAX_MODEL_CHARS)
    }
    if "messages" not in present:
        raise missing("messages")
    messages = translate_messages(present["messages"], t)
    system = translate_system(present["system"], t) if "system" in present else None
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    if len(messages) > MAX_MESSAGES:
        raise too_many("messages", MAX_MESSAGES, len(messages))
    chat["messages"] = messages

    max_tokens: int | None = None
    if "max_tokens" in present:
        max_tokens = check_int(present["max_tokens"], "max_tokens", 1, MAX_OUTPUT_TOKENS)
        chat["max_tokens"] = max_tokens
    elif not count_only:
        raise missing("max_tokens")

    stops = _stop_sequences(present.get("stop_sequences"))
    if stops:
        chat["stop"] = list(stops)
    if "temperature" in present:
        chat["temperature"] = check_number(present["temperature"], "temperature", 0, 1)
    if "top_p" in present:
        chat["top_p"] = check_number(present["top_p"], "top_p", 0, 1, lo_open=True)
    if "top_k" in present:
        top_k = check_int(present["top_k"], "top_k", 0)
        if top_k:
            chat["top_k"] = top_k
        else:
            t.ignore("top_k", "top_k")

    tool_names: frozenset[str] | None = None
    if "tools" in present:
        tools, tool_names = translate_tools(present["tools"], t)
        if tools:
            chat["tools"] = tools
    if "tool_choice" in present:
        translate_tool_choice(present["tool_choice"], tool_names, chat, t)

    thinking = _thinking(present.get("thinking"), max_tokens, t)
    reasoning = _reasoning(thinking, present.get("output_config"), t)
    if reasoning is not None:
        chat["reasoning"] = reasoning
    response_format = _response_format(present, t)
    if response_format is not None:
        chat["response_format"] = response_format

    if "metadata" in present:
        user = _metadata(present["metadata"], t)
        if user is not None:
            chat["user"] = user
    for extension in ("provider", "models"):
        if extension in present:
            chat[extension] = present[extension]
    if "stream" in present and check_bool(present["stream"], "stream") and not count_only:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat, t, stops


def _stop_sequences(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    sequences = check_array(value, "stop_sequences", max_items=MAX_STOP_SEQUENCES)
    for index, sequence in enumerate(sequences):
        check_str(sequence, f"stop_sequences[{index}]", non_empty=True, max_len=MAX_STOP_CHARS)
    return tuple(sequences)


def _thinking(value: object, max_tokens: int | None, t: Translation) -> tuple[str, int | None] | None:
    """`thinking` -> (type, budget_tokens), or None when absent."""
    if value is None:
        return None
    thinking = check_object(value, "thinking")
    if thinking.get("type") is None:
        raise missing("thinking.type")
    kind = check_enum(thinking.get("type"), "thinking.type", THINKING_TYPES)
    check_keys(thinking, _THINKING_KEYS[kind], "thinking")
    for key in ("display", "block_binding"):
        if thinking.get(key) is not None:
            t.ignore(f"thinking.{key}", f"thinking.{key}")
    if kind != "enabled":
        return kind, None
    budget = thinking.get("budget_tokens")
    if budget is None:
        raise missing("thinking.budget_tokens")
    check_int(budget, "thinking.budget_tokens", MIN_THINKING_BUDGET, MAX_OUTPUT_TOKENS)
    if max_tokens is not None and budget >= max_tokens:
        raise bad_value(
            "thinking.budget_tokens", f"it must be less than max_tokens ({max_tokens}), but got {budget}."
        )
    return kind, budget


def _reasoning(
    thinking: tuple[str, int | None] | None, output_config: object, t: Translation
) -> dict[str, Any] | None:
    effort: str | None = None
    if output_config is not None:
        config = check_object(output_config, "output_config")
        check_keys(config, _OUTPUT_CONFIG_KEYS, "output_config")
        if config.get("effort") is not None:
            effort = check_enum(config["effort"], "output_config.effort", EFFORTS)
        if config.get("task_budget") is not None:
            t.ignore("output_config.task_budget", "output_config.task_budget")
    kind, budget = thinking if thinking is not None else (None, None)
    if kind in ("adaptive", "between_tools"):
        return {"enabled": True, "effort": effort} if effort is not None else {"enabled": True}
    if effort is not None:
        t.ignore("output_config.effort", "output_config.effort")
    if kind == "enabled":
        return {"max_tokens": budget}
    if kind == "disabled":
        return {"enabled": False}
    return None


def _response_format(present: dict[str, Any], t: Translation) -> dict[str, Any] | None:
    """`output_config.format` (or the older top-level `output_format`) -> a json_schema response_format."""
    config = present.get("output_config")
    configured = config.get("format") if isinstance(config, dict) else None
    legacy = present.get("output_format")
    if configured is not None and legacy is not None:
        raise bad_value("output_format", "give the format once, in `output_config.format`.")
    path, value = (
        ("output_config.format", configured) if configured is not None else ("output_format", legacy)
    )
    if value is None:
        return None
    spec = check_object(value, path)
    check_keys(spec, _FORMAT_KEYS, path)
    check_enum(spec.get("type"), f"{path}.type", ("json_schema",))
    schema = spec.get("schema")
    if schema is None:
        raise missing(f"{path}.schema")
    return {
        "type": "json_schema",
        # Anthropic's structured outputs always hold to the schema: ask for the same.
        "json_schema": {
            "name": _RESPONSE_FORMAT_NAME,
            "schema": check_object(schema, f"{path}.schema"),
            "strict": True,
        },
    }


def _metadata(value: object, t: Translation) -> str | None:
    metadata = check_object(value, "metadata")
    user: str | None = None
    for key, item in metadata.items():
        if key == "user_id":
            if item is not None:
                user = check_str(item, "metadata.user_id")
        elif item is not None:
            t.ignore(f"metadata.{key}", "metadata")
    return user
