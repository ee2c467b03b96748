"""A Chat Completions answer -> an Anthropic `message`; helpers shared with the stream translator.

Content blocks come in the order thinking (`reasoning_content`, with an empty `signature`: no
Anthropic signature can exist), text, tool_use. Tool-call arguments that are not a JSON object
(malformed, truncated by max_tokens, an array) become `input: {}` rather than an error, both here
and in the stream, so the two always agree.

Usage: `input_tokens` is the prompt less its cached part, `cache_read_input_tokens` the cached
part (only when the upstream reported it), `cache_creation_input_tokens` 0 (no upstream bills
cache writes), and the gateway's `usage.cost` is kept as an extra `cost` field.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from service.inbound.messages_content import compact_json
from service.inbound.messages_request import MessagesRequest

_CHAT_ID_PREFIX = "chatcmpl-"
_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_id(chat_id: object) -> str:
    """`msg_` + the chat completion's id without its `chatcmpl-` prefix (random when it has none)."""
    if isinstance(chat_id, str) and chat_id:
        return "msg_" + chat_id.removeprefix(_CHAT_ID_PREFIX)
    return "msg_" + uuid.uuid4().hex


def tool_use_id(call_id: object, message: str, position: int) -> str:
    """The upstream's call id, or one derived from the message id when it sent none."""
    if isinstance(call_id, str) and call_id:
        return call_id
    return f"toolu_{message.removeprefix('msg_')}_{position}"


def tool_input(arguments: object) -> dict[str, Any]:
    """Tool-call arguments (a JSON string) -> the tool_use `input` object; `{}` if not an object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments, parse_constant=_reject_constant)
        if not isinstance(parsed, dict):
            return {}
        compact_json(parsed)  # 1e999 parses to inf, which no JSON answer can carry
    except (ValueError, RecursionError):
        return {}
    return parsed


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def tool_input_json(arguments: object) -> str:
    """The `input_json_delta` text for a tool call: its input as compact JSON, "" when empty."""
    parsed = tool_input(arguments)
    return compact_json(parsed) if parsed else ""


def stop_reason(
    finish_reason: object, matched: object, has_tool_use: bool, request: MessagesRequest
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) from the choice's `finish_reason` and vLLM's `stop_reason`."""
    if finish_reason == "length":
        return "max_tokens", None
    if has_tool_use:
        return "tool_use", None
    if finish_reason == "stop" and isinstance(matched, str) and matched in request.stop_sequences:
        return "stop_sequence", matched
    reason = _FINISH_TO_STOP.get(finish_reason) if isinstance(finish_reason, str) else None
    # A `tool_calls` finish without a parsed call cannot ask the client to run anything.
    if reason is None or reason == "tool_use":
        return "end_turn", None
    return reason, None


def anthropic_usage(usage: object) -> dict[str, Any]:
    """Chat `usage` -> Anthropic `usage` (zeros when the upstream reported none)."""
    if not isinstance(usage, Mapping):
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    out: dict[str, Any] = {
        "input_tokens": max(prompt - _count(cached), 0),
        "output_tokens": _count(usage.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
    }
    if _is_count(cached):
        out["cache_read_input_tokens"] = cached
    cost = usage.get("cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        out["cost"] = cost
    return out


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _count(value: object) -> int:
    return value if type(value) is int and value >= 0 else 0


def reasoning_text(carrier: Mapping[str, Any]) -> str:
    """The reasoning of a message or delta: Baseten's `reasoning_content`, or OpenRouter's `reasoning`."""
    for key in ("reasoning_content", "reasoning"):
        value = carrier.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def content_text(carrier: Mapping[str, Any]) -> str:
    """The text of a message or delta's `content`: a string, or the text of its parts."""
    content = carrier.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def chat_to_message(completion: dict[str, Any], *, request: MessagesRequest) -> dict[str, Any]:
    """A Chat Completions body -> the Anthropic `message` answering `request`."""
    ident = message_id(completion.get("id"))
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    content: list[dict[str, Any]] = []
    thinking = reasoning_text(message)
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = content_text(message)
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for position, call in enumerate(calls if isinstance(calls, list) else ()):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        name = function.get("name")
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.get("id"), ident, position),
                "name": request.client_tool_name(name if isinstance(name, str) else ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), has_tool_use, request
    )
    model = completion.get("model")
    return {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model if isinstance(model, str) and model else request.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(completion.get("usage")),
    }
