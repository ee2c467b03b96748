"""Checks for `messages`: roles, content and its parts, tool calls; counts what routing needs.

Paths for error messages are only formatted when a check fails, because this runs over every
message of every request.
"""

from __future__ import annotations

from typing import Any

from service.chat.validate_types import (
    check_keys,
    empty_array,
    empty_string,
    missing,
    not_one_of,
    too_many,
    wrong_type,
)

MAX_MESSAGES = 10_000

ROLES = ("system", "user", "assistant", "tool", "developer")
_PART_TYPES_USER = ("text", "image_url", "input_audio")
_PART_TYPES_TEXT = ("text",)
_IMAGE_DETAILS = ("auto", "low", "high")
_AUDIO_FORMATS = ("wav", "mp3")

_MESSAGE_KEYS = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    # `refusal` is OpenAI's own assistant field; clients that send a reply back keep it.
    "assistant": frozenset({"role", "content", "name", "tool_calls", "reasoning_content", "refusal"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
# OpenAI's prompt_cache_breakpoint is accepted on text parts and dropped (service.chat.params).
_TEXT_PART_KEYS = frozenset({"type", "text", "prompt_cache_breakpoint"})
_IMAGE_PART_KEYS = frozenset({"type", "image_url"})
_IMAGE_URL_KEYS = frozenset({"url", "detail"})
_AUDIO_PART_KEYS = frozenset({"type", "input_audio"})
_AUDIO_KEYS = frozenset({"data", "format"})
_TOOL_CALL_KEYS = frozenset({"id", "type", "function"})
_CALLED_FUNCTION_KEYS = frozenset({"name", "arguments"})


class MessageTally:
    """What routing reads from the messages, gathered while they are checked."""

    __slots__ = ("audio_parts", "image_parts", "text_chars")

    def __init__(self) -> None:
        self.text_chars = 0
        self.image_parts = 0
        self.audio_parts = 0


def check_messages(value: object, tally: MessageTally) -> int:
    """Check the `messages` array; returns how many messages it holds."""
    if not isinstance(value, list):
        raise wrong_type("messages", "an array", value)
    if not value:
        raise empty_array("messages")
    if len(value) > MAX_MESSAGES:
        raise too_many("messages", MAX_MESSAGES, len(value))
    for index, message in enumerate(value):
        _check_message(message, index, tally)
    return len(value)


def _check_message(message: object, index: int, tally: MessageTally) -> None:
    if not isinstance(message, dict):
        raise wrong_type(f"messages[{index}]", "an object", message)
    role = message.get("role")
    allowed = _MESSAGE_KEYS.get(role) if type(role) is str else None
    if allowed is None:
        if role is None:
            raise missing(f"messages[{index}].role")
        if type(role) is not str:
            raise wrong_type(f"messages[{index}].role", "a string", role)
        raise not_one_of(f"messages[{index}].role", role, ROLES)
    check_keys(message, allowed, f"messages[{index}]")

    name = message.get("name")
    if name is not None and type(name) is not str:
        raise wrong_type(f"messages[{index}].name", "a string", name)

    content = message.get("content")
    if role == "user":
        if content is None:
            raise missing(f"messages[{index}].content")
        _check_content(content, index, _PART_TYPES_USER, tally)
    elif role == "assistant":
        _check_assistant(message, content, index, tally)
    else:
        if content is None:
            raise missing(f"messages[{index}].content")
        _check_content(content, index, _PART_TYPES_TEXT, tally)
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None:
                raise missing(f"messages[{index}].tool_call_id")
            if type(call_id) is not str:
                raise wrong_type(f"messages[{index}].tool_call_id", "a string", call_id)
            if not call_id:
                raise empty_string(f"messages[{index}].tool_call_id")


def _check_assistant(message: dict[str, Any], content: object, index: int, tally: MessageTally) -> None:
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        _check_tool_calls(tool_calls, index, tally)
    if content is None:
        # An assistant turn that only called tools carries no content.
        if tool_calls is None:
            raise missing(f"messages[{index}].content")
    else:
        _check_content(content, index, _PART_TYPES_TEXT, tally)
    reasoning = message.get("reasoning_content")
    if reasoning is not None:
        if type(reasoning) is not str:
            raise wrong_type(f"messages[{index}].reasoning_content", "a string", reasoning)
        tally.text_chars += len(reasoning)
    refusal = message.get("refusal")
    if refusal is not None and type(refusal) is not str:
        raise wrong_type(f"messages[{index}].refusal", "a string", refusal)


def _check_content(content: object, index: int, part_types: tuple[str, ...], tally: MessageTally) -> None:
    if type(content) is str:
        tally.text_chars += len(content)
        return
    if not isinstance(content, list):
        expected = "a string or an array of content parts"
        raise wrong_type(f"messages[{index}].content", expected, content)
    if not content:
        raise empty_array(f"messages[{index}].content")
    for position, part in enumerate(content):
        if not isinstance(part, dict):
            raise wrong_type(f"messages[{index}].content[{position}]", "an object", part)
        kind = part.get("type")
        if kind == "text":
            check_keys(part, _TEXT_PART_KEYS, f"messages[{index}].content[{position}]")
            text = part.get("text")
            if type(text) is not str:
                param = f"messages[{index}].content[{position}].text"
                raise missing(param) if text is None else wrong_type(param, "a string", text)
            tally.text_chars += len(text)
            breakpoint_ = part.get("prompt_cache_breakpoint")
            if breakpoint_ is not None and not isinstance(breakpoint_, dict):
                param = f"messages[{index}].content[{position}].prompt_cache_breakpoint"
                raise wrong_type(param, "an object", breakpoint_)
        elif kind == "image_url" and part_types is _PART_TYPES_USER:
            _check_image_part(part, f"messages[{index}].content[{position}]")
            tally.image_parts += 1
        elif kind == "input_audio" and part_types is _PART_TYPES_USER:
            _check_audio_part(part, f"messages[{index}].content[{position}]")
            tally.audio_parts += 1
        else:
            param = f"messages[{index}].content[{position}].type"
            if kind is None:
                raise missing(param)
            if type(kind) is not str:
                raise wrong_type(param, "a string", kind)
            raise not_one_of(param, kind, part_types)


def _check_image_part(part: dict[str, Any], prefix: str) -> None:
    check_keys(part, _IMAGE_PART_KEYS, prefix)
    image = part.get("image_url")
    if image is None:
        raise missing(f"{prefix}.image_url")
    if not isinstance(image, dict):
        raise wrong_type(f"{prefix}.image_url", "an object", image)
    check_keys(image, _IMAGE_URL_KEYS, f"{prefix}.image_url")
    url = image.get("url")
    if url is None:
        raise missing(f"{prefix}.image_url.url")
    if type(url) is not str:
        raise wrong_type(f"{prefix}.image_url.url", "a string", url)
    if not url:
        raise empty_string(f"{prefix}.image_url.url")
    detail = image.get("detail")
    if detail is not None and detail not in _IMAGE_DETAILS:
        if type(detail) is not str:
            raise wrong_type(f"{prefix}.image_url.detail", "a string", detail)
        raise not_one_of(f"{prefix}.image_url.detail", detail, _IMAGE_DETAILS)


def _check_audio_part(part: dict[str, Any], prefix: str) -> None:
    check_keys(part, _AUDIO_PART_KEYS, prefix)
    audio = part.get("input_audio")
    if audio is None:
        raise missing(f"{prefix}.input_audio")
    if not isinstance(audio, dict):
        raise wrong_type(f"{prefix}.input_audio", "an object", audio)
    check_keys(audio, _AUDIO_KEYS, f"{prefix}.input_audio")
    data = audio.get("data")
    if data is None:
        raise missing(f"{prefix}.input_audio.data")
    if type(data) is not str:
        raise wrong_type(f"{prefix}.input_audio.data", "a string", data)
    if not data:
        raise empty_string(f"{prefix}.input_audio.data")
    audio_format = audio.get("format")
    if audio_format is None:
        raise missing(f"{prefix}.input_audio.format")
    if audio_format not in _AUDIO_FORMATS:
        if type(audio_format) is not str:
            raise wrong_type(f"{prefix}.input_audio.format", "a string", audio_format)
        raise not_one_of(f"{prefix}.input_audio.format", audio_format, _AUDIO_FORMATS)


def _check_tool_calls(tool_calls: object, index: int, tally: MessageTally) -> None:
    prefix = f"messages[{index}].tool_calls"
    if not isinstance(tool_calls, list):
        raise wrong_type(prefix, "an array", tool_calls)
    if not tool_calls:
        raise empty_array(prefix)
    for position, call in enumerate(tool_calls):
        where = f"{prefix}[{position}]"
        if not isinstance(call, dict):
            raise wrong_type(where, "an object", call)
        check_keys(call, _TOOL_CALL_KEYS, where)
        call_id = call.get("id")
        if call_id is None:
            raise missing(f"{where}.id")
        if type(call_id) is not str:
            raise wrong_type(f"{where}.id", "a string", call_id)
        if not call_id:
            raise empty_string(f"{where}.id")
        kind = call.get("type")
        if kind != "function":
            if kind is None:
                raise missing(f"{where}.type")
            if type(kind) is not str:
                raise wrong_type(f"{where}.type", "a string", kind)
            raise not_one_of(f"{where}.type", kind, ("function",))
        function = call.get("function")
        if function is None:
            raise missing(f"{where}.function")
        if not isinstance(function, dict):
            raise wrong_type(f"{where}.function", "an object", function)
        check_keys(function, _CALLED_FUNCTION_KEYS, f"{where}.function")
        name = function.get("name")
        if name is None:
            raise missing(f"{where}.function.name")
        if type(name) is not str:
            raise wrong_type(f"{where}.function.name", "a string", name)
        if not name:
            raise empty_string(f"{where}.function.name")
        arguments = function.get("arguments")
        if arguments is None:
            raise missing(f"{where}.function.arguments")
        if type(arguments) is not str:
            raise wrong_type(f"{where}.function.arguments", "a string", arguments)
        tally.text_chars += len(arguments)
