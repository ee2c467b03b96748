"""`system` and `messages` of a Messages request -> Chat Completions messages.

Anthropic combines consecutive turns of the same role; so does this, so that every `tool_result`
of a user turn can become a `tool` message placed right after the assistant message that made the
call. The user turn's own text and images follow as one user message (images returned inside tool
results go there too, first, because a `tool` message holds only text). A `tool_result` with
`is_error: true` gets its text prefixed with "Error: ", the only way a chat `tool` message can say so.

Earlier `thinking` blocks are passed on as the assistant's `reasoning_content`: models that think
between tool calls (Kimi K2, DeepSeek V3.2+, GLM) expect their reasoning back within a tool loop,
and chat templates drop it for turns before the last user message anyway. `redacted_thinking` is
Anthropic-encrypted and dropped.
"""

from __future__ import annotations

import json
from typing import Any

from service.chat.validate_types import (
    bad_value,
    check_array,
    check_bool,
    check_enum,
    check_keys,
    check_object,
    check_str,
    empty_array,
    missing,
    not_one_of,
    wrong_type,
)
from service.errors import invalid
from service.inbound.messages_context import Translation

ROLES = ("user", "assistant", "system")
BLOCK_TYPES_USER = ("text", "image", "tool_result")
BLOCK_TYPES_ASSISTANT = ("text", "thinking", "redacted_thinking", "tool_use")
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"

_MESSAGE_KEYS = frozenset({"role", "content"})
_TEXT_KEYS = frozenset({"type", "text", "cache_control", "citations"})
_IMAGE_KEYS = frozenset({"type", "source", "cache_control", "transformations"})
_BASE64_SOURCE_KEYS = frozenset({"type", "media_type", "data"})
_URL_SOURCE_KEYS = frozenset({"type", "url"})
_TOOL_USE_KEYS = frozenset({"type", "id", "name", "input", "cache_control", "caller", "toolset_name"})
_TOOL_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error", "cache_control", "toolset_name"})
_THINKING_KEYS = frozenset({"type", "thinking", "signature"})
_REDACTED_THINKING_KEYS = frozenset({"type", "data"})

# Blocks whose meaning needs Anthropic's servers (files, citations, server tools): refused by name.
_REFUSED_BLOCKS = {
    "document": "documents (PDF or text) are not supported; send their text as `text` blocks",
    "search_result": "search result blocks are not supported; send their text as `text` blocks",
    "server_tool_use": "results of Anthropic's server tools cannot be replayed to another model",
    "web_search_tool_result": "results of Anthropic's server tools cannot be replayed to another model",
    "web_fetch_tool_result": "results of Anthropic's server tools cannot be replayed to another model",
    "code_execution_tool_result": "results of Anthropic's server tools cannot be replayed to another model",
    "bash_code_execution_tool_result": "results of Anthropic's server tools cannot be replayed to another model",
    "text_editor_code_execution_tool_result": (
        "results of Anthropic's server tools cannot be replayed to another model"
    ),
    "tool_search_tool_result": "results of Anthropic's server tools cannot be replayed to another model",
    "advisor_tool_result": "results of Anthropic's server tools cannot be replayed to another model",
    "mcp_tool_use": "Anthropic's MCP connector is not supported",
    "mcp_tool_result": "Anthropic's MCP connector is not supported",
    "container_upload": "Anthropic's code-execution container is not supported",
    "compaction": "Anthropic's server-side compaction is not supported",
    "tool_reference": "Anthropic's tool search is not supported",
}

Blocks = list[tuple[str, dict[str, Any]]]  # (path, block) in the client's order


def translate_system(value: object, t: Translation, path: str = "system") -> str | None:
    """A `system` value (string or text blocks) -> the text of one system message, or None."""
    if type(value) is str:
        return value or None
    blocks = check_array(value, path)
    texts = []
    for index, raw in enumerate(blocks):
        where = f"{path}[{index}]"
        block = check_object(raw, where)
        check_enum(block.get("type"), f"{where}.type", ("text",))
        text = _text(block, where, t)
        if path == "system" and text.startswith(BILLING_HEADER_PREFIX):
            t.ignore(where, "system.billing_header")
            continue
        texts.append(text)
    return "\n".join(texts) or None


def translate_messages(value: object, t: Translation) -> list[dict[str, Any]]:
    """The `messages` array -> chat messages (the system prompt is added by the caller)."""
    items = check_array(value, "messages", non_empty=True)
    out: list[dict[str, Any]] = []
    role: str | None = None
    blocks: Blocks = []
    whole_string = False
    calls: frozenset[str] = frozenset()  # tool_use ids of the latest assistant turn

    def flush() -> None:
        nonlocal calls
        if role == "user":
            out.extend(_user_turn(blocks, whole_string, calls, t))
            calls = frozenset()
        elif role == "assistant":
            message, calls = _assistant_turn(blocks, t)
            out.append(message)

    for index, item in enumerate(items):
        path = f"messages[{index}]"
        message = check_object(item, path)
        check_keys(message, _MESSAGE_KEYS, path)
        this_role = message.get("role")
        if this_role is None:
            raise missing(f"{path}.role")
        check_enum(this_role, f"{path}.role", ROLES)
        content = message.get("content")
        if content is None:
            raise missing(f"{path}.content")
        if this_role == "system":
            # Mid-conversation system messages (Claude Code sends them) stay where they are.
            flush()
            role, blocks = None, []
            text = translate_system(content, t, f"{path}.content")
            if text is not None:
                out.append({"role": "system", "content": text})
            continue
        new_blocks = _blocks(content, path)
        if this_role == role:
            blocks.extend(new_blocks)
            whole_string = False
        else:
            flush()
            role, blocks, whole_string = this_role, new_blocks, type(content) is str
    flush()
    return out


def _blocks(content: object, path: str) -> Blocks:
    if type(content) is str:
        return [(f"{path}.content", {"type": "text", "text": content})]
    if not isinstance(content, list):
        raise wrong_type(f"{path}.content", "a string or an array of content blocks", content)
    if not content:
        raise empty_array(f"{path}.content")
    return [
        (f"{path}.content[{j}]", check_object(block, f"{path}.content[{j}]"))
        for j, block in enumerate(content)
    ]


def _block_type(block: dict[str, Any], path: str, allowed: tuple[str, ...], where: str) -> str:
    kind = block.get("type")
    if kind is None:
        raise missing(f"{path}.type")
    if type(kind) is not str:
        raise wrong_type(f"{path}.type", "a string", kind)
    if kind in allowed:
        return kind
    reason = _REFUSED_BLOCKS.get(kind)
    if reason is not None:
        raise invalid(f"`{path}` is a `{kind}` block: {reason}.", f"{path}.type", "unsupported_content_block")
    if kind in BLOCK_TYPES_USER or kind in BLOCK_TYPES_ASSISTANT:
        raise bad_value(f"{path}.type", f"`{kind}` blocks are not allowed in {where}.")
    raise not_one_of(f"{path}.type", kind, allowed)


def _text(block: dict[str, Any], path: str, t: Translation) -> str:
    check_keys(block, _TEXT_KEYS, path)
    text = block.get("text")
    if text is None:
        raise missing(f"{path}.text")
    checked = check_str(text, f"{path}.text")
    _drop(block, "cache_control", path, "cache_control", t)
    _drop(block, "citations", path, "citations", t)
    return checked


def _drop(block: dict[str, Any], key: str, path: str, field: str, t: Translation) -> None:
    if block.get(key) is not None:
        t.ignore(f"{path}.{key}", field)


def _user_turn(
    blocks: Blocks, whole_string: bool, calls: frozenset[str], t: Translation
) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    hoisted: list[dict[str, Any]] = []  # images from tool results
    parts: list[dict[str, Any]] = []
    answered: set[str] = set()
    for path, block in blocks:
        kind = _block_type(block, path, BLOCK_TYPES_USER, "user messages")
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, path, t)})
        elif kind == "image":
            parts.append(_image(block, path, t))
        else:
            tools.append(_tool_result(block, path, calls, answered, hoisted, t))
    out = tools
    parts = hoisted + parts
    if parts:
        if whole_string and len(parts) == 1:
            out.append({"role": "user", "content": parts[0]["text"]})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _image(block: dict[str, Any], path: str, t: Translation) -> dict[str, Any]:
    check_keys(block, _IMAGE_KEYS, path)
    _drop(block, "cache_control", path, "cache_control", t)
    _drop(block, "transformations", path, "image.transformations", t)
    where = f"{path}.source"
    source = block.get("source")
    if source is None:
        raise missing(where)
    source = check_object(source, where)
    kind = check_enum(source.get("type"), f"{where}.type", ("base64", "url", "file"))
    if kind == "file":
        raise invalid(
            f"`{where}` refers to a file of Anthropic's Files API, which Switchyard does not have; "
            "send the image as base64 or a URL.",
            where,
            "unsupported_image_source",
        )
    if kind == "url":
        check_keys(source, _URL_SOURCE_KEYS, where)
        url = check_str(source.get("url"), f"{where}.url", non_empty=True)
        return {"type": "image_url", "image_url": {"url": url}}
    check_keys(source, _BASE64_SOURCE_KEYS, where)
    media_type = check_enum(source.get("media_type"), f"{where}.media_type", IMAGE_MEDIA_TYPES)
    data = check_str(source.get("data"), f"{where}.data", non_empty=True)
    return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}


def _tool_result(
    block: dict[str, Any],
    path: str,
    calls: frozenset[str],
    answered: set[str],
    hoisted: list[dict[str, Any]],
    t: Translation,
) -> dict[str, Any]:
    check_keys(block, _TOOL_RESULT_KEYS, path)
    _drop(block, "cache_control", path, "cache_control", t)
    _drop(block, "toolset_name", path, "toolset_name", t)
    call_id = check_str(block.get("tool_use_id"), f"{path}.tool_use_id", non_empty=True)
    if call_id not in calls:
        raise bad_value(
            f"{path}.tool_use_id",
            f"{call_id!r} matches no `tool_use` block of the previous assistant message; each "
            "`tool_result` must answer a `tool_use` of the message right before it.",
        )
    if call_id in answered:
        raise bad_value(f"{path}.tool_use_id", f"{call_id!r} already has a `tool_result` in this message.")
    answered.add(call_id)
    failed = block.get("is_error")
    if failed is not None:
        check_bool(failed, f"{path}.is_error")
    text = _tool_result_text(block.get("content"), f"{path}.content", hoisted, t)
    return {"role": "tool", "tool_call_id": call_id, "content": f"Error: {text}" if failed else text}


def _tool_result_text(content: object, path: str, hoisted: list[dict[str, Any]], t: Translation) -> str:
    if content is None:
        return ""
    if type(content) is str:
        return content
    if not isinstance(content, list):
        raise wrong_type(path, "a string or an array of content blocks", content)
    texts = []
    for index, item in enumerate(content):
        where = f"{path}[{index}]"
        block = check_object(item, where)
        kind = _block_type(block, where, ("text", "image"), "tool results")
        if kind == "text":
            texts.append(_text(block, where, t))
        else:
            hoisted.append(_image(block, where, t))
    return "\n".join(texts)


def _assistant_turn(blocks: Blocks, t: Translation) -> tuple[dict[str, Any], frozenset[str]]:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    ids: set[str] = set()
    for path, block in blocks:
        kind = _block_type(block, path, BLOCK_TYPES_ASSISTANT, "assistant messages")
        if kind == "text":
            texts.append(_text(block, path, t))
        elif kind == "thinking":
            check_keys(block, _THINKING_KEYS, path)
            thinking = block.get("thinking")
            if thinking is None:
                raise missing(f"{path}.thinking")
            if check_str(thinking, f"{path}.thinking"):
                reasoning.append(thinking)
            signature = block.get("signature")
            if signature is not None:
                check_str(signature, f"{path}.signature")
                t.ignore(f"{path}.signature", "thinking.signature")
        elif kind == "redacted_thinking":
            check_keys(block, _REDACTED_THINKING_KEYS, path)
            check_str(block.get("data"), f"{path}.data")
            t.ignore(path, "redacted_thinking")
        else:
            call = _tool_use(block, path, t)
            if call["id"] in ids:
                raise bad_value(f"{path}.id", f"{call['id']!r} is used by two `tool_use` blocks.")
            ids.add(call["id"])
            calls.append(call)
    message: dict[str, Any] = {"role": "assistant"}
    if texts or not calls:
        message["content"] = "\n".join(texts)
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "\n".join(reasoning)
    return message, frozenset(ids)


def _tool_use(block: dict[str, Any], path: str, t: Translation) -> dict[str, Any]:
    check_keys(block, _TOOL_USE_KEYS, path)
    _drop(block, "cache_control", path, "cache_control", t)
    _drop(block, "caller", path, "tool_use.caller", t)
    _drop(block, "toolset_name", path, "toolset_name", t)
    call_id = check_str(block.get("id"), f"{path}.id", non_empty=True)
    name = check_str(block.get("name"), f"{path}.name", non_empty=True)
    arguments = block.get("input")
    if arguments is None:
        raise missing(f"{path}.input")
    check_object(arguments, f"{path}.input")
    try:
        encoded = compact_json(arguments)
    except ValueError:
        raise bad_value(f"{path}.input", "it must be JSON (no NaN or Infinity).") from None
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": t.chat_name(name, f"{path}.name"), "arguments": encoded},
    }


def compact_json(value: object) -> str:
    """JSON without spaces, as Anthropic's SDKs write tool input; ValueError for NaN or Infinity."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
