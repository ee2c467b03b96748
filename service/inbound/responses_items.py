"""Responses input items: checked, normalized for storage, and turned into chat messages.

`normalize_items` checks what the client sent and gives each item one canonical shape, which is
also what storage keeps and what a later turn reads back as history. `items_to_messages` turns
canonical items into Chat Completions messages:

- `message`: user as user; system and developer as system (Baseten's engines know no developer
  role); assistant as assistant, its `output_text` parts joined.
- `function_call`: a tool call on an assistant message. A call that follows an assistant message
  (or another call) joins it, so one model turn stays one assistant message.
- `function_call_output`: a tool message; its call must appear earlier in the conversation.
- `reasoning`: its text (the `reasoning_text` content when present, else the summary) becomes the
  next assistant message's `reasoning_content`. Kept, not dropped, because the models behind
  Baseten that reason between tool calls (gpt-oss, Kimi, GLM, DeepSeek) expect the reasoning of the
  turn in progress back, and the engines' chat templates already drop what they do not render;
  reasoning with nothing after it but a new user turn is dropped. `encrypted_content` (OpenAI's
  opaque form) cannot be read by another model and is discarded.
- `item_reference`: replaced by the item of that id from the history or earlier in this input.

Inside items, keys the gateway does not read (`status`, `phase`, `annotations`, ...) are tolerated:
SDKs send output items back as input with whatever their version carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.chat.validate_types import (
    check_array,
    check_object,
    check_str,
    empty_array,
    missing,
    not_one_of,
    wrong_type,
)
from service.errors import invalid
from service.inbound.responses_tools import flat_name, required_str, unsupported

ROLES = ("user", "assistant", "system", "developer")
IMAGE_DETAILS = ("auto", "low", "high", "original")
AUDIO_FORMATS = ("wav", "mp3")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "item_reference")

_USER_PARTS = ("input_text", "input_image", "input_audio")
_TEXT_PARTS = ("input_text",)
_ASSISTANT_PARTS = ("output_text", "refusal", "input_text")

Item = dict[str, Any]


def normalize_items(value: object, known: Sequence[Item], prefix: str = "input") -> list[Item]:
    """Check `input` (a string or an array of items) and return its canonical items.

    `known` is what an `item_reference` may name: the stored history of the conversation."""
    if type(value) is str:
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    items = check_array(value, prefix)
    by_id: dict[str, Item] = {item["id"]: item for item in known if type(item.get("id")) is str}
    out: list[Item] = []
    for index, raw in enumerate(items):
        where = f"{prefix}[{index}]"
        item = _normalize_item(raw, where, by_id)
        if type(item.get("id")) is str:
            by_id[item["id"]] = item
        out.append(item)
    return out


def _normalize_item(raw: object, where: str, by_id: Mapping[str, Item]) -> Item:
    item = check_object(raw, where)
    kind = item.get("type")
    if kind is None:
        # An easy input message has no type; an item reference may have nothing but its id.
        if "role" in item:
            kind = "message"
        elif "id" in item:
            kind = "item_reference"
        else:
            raise missing(f"{where}.type")
    if kind == "message":
        return _message(item, where)
    if kind == "function_call":
        call: Item = {
            "type": "function_call",
            "call_id": required_str(item, "call_id", f"{where}.call_id"),
            "name": required_str(item, "name", f"{where}.name"),
            "arguments": _string(item, "arguments", where),
        }
        namespace = item.get("namespace")
        if namespace is not None:
            call["namespace"] = check_str(namespace, f"{where}.namespace", non_empty=True)
        return _with_id(call, item, where)
    if kind == "function_call_output":
        output: Item = {
            "type": "function_call_output",
            "call_id": required_str(item, "call_id", f"{where}.call_id"),
            "output": _tool_output(item.get("output"), f"{where}.output"),
        }
        return _with_id(output, item, where)
    if kind == "reasoning":
        return _with_id(_reasoning(item, where), item, where)
    if kind == "item_reference":
        ref = required_str(item, "id", f"{where}.id")
        target = by_id.get(ref)
        if target is None:
            raise invalid(
                f"Item with id '{ref[:64]}' not found: an item_reference can only name an item of this "
                "input or of the conversation that 'previous_response_id' continues.",
                f"{where}.id",
                "invalid_value",
            )
        return target
    if type(kind) is not str:
        raise wrong_type(f"{where}.type", "a string", kind)
    raise unsupported(
        f"{where}.type",
        f"Input items of type '{kind[:64]}' are not supported: only {', '.join(ITEM_TYPES)} items "
        "can be sent to the open models behind Switchyard.",
    )


def _with_id(out: Item, item: Item, where: str) -> Item:
    item_id = item.get("id")
    if item_id is not None:
        out["id"] = check_str(item_id, f"{where}.id", non_empty=True)
    return out


def _string(item: Item, key: str, where: str) -> str:
    value = item.get(key)
    if value is None:
        raise missing(f"{where}.{key}")
    return check_str(value, f"{where}.{key}")


def _message(item: Item, where: str) -> Item:
    role = item.get("role")
    if role not in ROLES:
        if role is None:
            raise missing(f"{where}.role")
        if type(role) is not str:
            raise wrong_type(f"{where}.role", "a string", role)
        raise not_one_of(f"{where}.role", role, ROLES)
    content = item.get("content")
    if content is None:
        raise missing(f"{where}.content")
    if type(content) is str:
        part_type = "output_text" if role == "assistant" else "input_text"
        parts: list[Item] = [{"type": part_type, "text": content}]
        if part_type == "output_text":
            parts[0]["annotations"] = []
    else:
        if not isinstance(content, list):
            raise wrong_type(f"{where}.content", "a string or an array of content parts", content)
        if not content:
            raise empty_array(f"{where}.content")
        allowed = _USER_PARTS if role == "user" else _ASSISTANT_PARTS if role == "assistant" else _TEXT_PARTS
        parts = [_part(part, f"{where}.content[{i}]", allowed) for i, part in enumerate(content)]
    return _with_id({"type": "message", "role": role, "content": parts}, item, where)


def _part(raw: object, where: str, allowed: tuple[str, ...]) -> Item:
    part = check_object(raw, where)
    kind = part.get("type")
    if kind in allowed:
        if kind == "input_text":
            return {"type": "input_text", "text": _string(part, "text", where)}
        if kind == "output_text":
            return {"type": "output_text", "text": _string(part, "text", where), "annotations": []}
        if kind == "refusal":
            return {"type": "refusal", "refusal": _string(part, "refusal", where)}
        if kind == "input_image":
            return _image(part, where)
        return _audio(part, where)
    if kind is None:
        raise missing(f"{where}.type")
    if type(kind) is not str:
        raise wrong_type(f"{where}.type", "a string", kind)
    if kind == "input_file":
        raise unsupported(f"{where}.type", "File inputs ('input_file') are not supported.")
    if kind in _USER_PARTS and allowed is not _USER_PARTS:
        raise unsupported(f"{where}.type", f"'{kind}' content is only accepted in user messages.")
    raise not_one_of(f"{where}.type", kind, allowed)


def _image(part: Item, where: str) -> Item:
    if part.get("file_id") is not None:
        raise unsupported(
            f"{where}.file_id",
            "Images given by 'file_id' are not supported: there is no Files API here. Send the image "
            "as 'image_url' (an https URL or a data: URL).",
        )
    url = part.get("image_url")
    if url is None:
        raise missing(f"{where}.image_url")
    image: Item = {"type": "input_image", "image_url": check_str(url, f"{where}.image_url", non_empty=True)}
    detail = part.get("detail")
    if detail is not None:
        if detail not in IMAGE_DETAILS:
            if type(detail) is not str:
                raise wrong_type(f"{where}.detail", "a string", detail)
            raise not_one_of(f"{where}.detail", detail, IMAGE_DETAILS)
        image["detail"] = detail
    return image


def _audio(part: Item, where: str) -> Item:
    audio = check_object(part.get("input_audio"), f"{where}.input_audio")
    data = check_str(audio.get("data"), f"{where}.input_audio.data", non_empty=True)
    audio_format = audio.get("format")
    if audio_format not in AUDIO_FORMATS:
        if audio_format is None:
            raise missing(f"{where}.input_audio.format")
        if type(audio_format) is not str:
            raise wrong_type(f"{where}.input_audio.format", "a string", audio_format)
        raise not_one_of(f"{where}.input_audio.format", audio_format, AUDIO_FORMATS)
    return {"type": "input_audio", "input_audio": {"data": data, "format": audio_format}}


def _tool_output(value: object, where: str) -> str | list[Item]:
    if value is None:
        raise missing(where)
    if type(value) is str:
        return value
    parts = check_array(value, where)
    out: list[Item] = []
    for index, raw in enumerate(parts):
        inner = f"{where}[{index}]"
        part = check_object(raw, inner)
        kind = part.get("type")
        if kind == "input_text":
            out.append({"type": "input_text", "text": _string(part, "text", inner)})
        elif kind in ("input_image", "input_file"):
            raise unsupported(
                f"{inner}.type",
                f"'{kind}' in a function_call_output is not supported: tool results reach the model "
                "as text only.",
            )
        elif kind is None:
            raise missing(f"{inner}.type")
        else:
            raise not_one_of(f"{inner}.type", kind, ("input_text",))
    return out


def _reasoning(item: Item, where: str) -> Item:
    out: Item = {
        "type": "reasoning",
        "summary": _texts(item.get("summary"), f"{where}.summary", "summary_text"),
    }
    content = item.get("content")
    if content is not None:
        out["content"] = _texts(content, f"{where}.content", "reasoning_text")
    return out


def _texts(value: object, where: str, part_type: str) -> list[Item]:
    if value is None:
        raise missing(where)
    parts = check_array(value, where)
    out: list[Item] = []
    for index, raw in enumerate(parts):
        inner = f"{where}[{index}]"
        part = check_object(raw, inner)
        kind = part.get("type")
        if kind != part_type:
            if kind is None:
                raise missing(f"{inner}.type")
            raise not_one_of(f"{inner}.type", kind, (part_type,))
        out.append({"type": part_type, "text": _string(part, "text", inner)})
    return out


def reasoning_text(item: Item) -> str:
    """The readable reasoning of a canonical reasoning item: its full text, else its summary."""
    parts = item.get("content") or item["summary"]
    return "\n\n".join(part["text"] for part in parts if part["text"])


class _Messages:
    """Chat messages built item by item, with the reasoning waiting for its assistant turn."""

    __slots__ = ("call_ids", "messages", "pending_reasoning")

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.pending_reasoning: list[str] = []
        self.call_ids: set[str] = set()

    def assistant(self, *, join: bool) -> dict[str, Any]:
        """The assistant message to add to: the last one when joining, else a new one."""
        last = self.messages[-1] if self.messages else None
        if join and last is not None and last["role"] == "assistant":
            message = last
        else:
            message = {"role": "assistant"}
            self.messages.append(message)
        if self.pending_reasoning:
            text = "\n\n".join(self.pending_reasoning)
            earlier = message.get("reasoning_content")
            message["reasoning_content"] = f"{earlier}\n\n{text}" if earlier else text
            self.pending_reasoning = []
        return message

    def add(self, message: dict[str, Any]) -> None:
        # Reasoning not followed by its answer belongs to no turn the model can continue.
        self.pending_reasoning = []
        self.messages.append(message)


def items_to_messages(items: Sequence[tuple[Item, str]]) -> list[dict[str, Any]]:
    """Chat messages for canonical items, each paired with its path for error messages."""
    out = _Messages()
    for item, where in items:
        kind = item["type"]
        if kind == "message":
            _message_to_chat(item, out)
        elif kind == "function_call":
            message = out.assistant(join=True)
            name = item["name"]
            if "namespace" in item:
                name = flat_name(item["namespace"], name)
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": name, "arguments": item["arguments"]},
            }
            message.setdefault("tool_calls", []).append(call)
            out.call_ids.add(item["call_id"])
        elif kind == "function_call_output":
            call_id = item["call_id"]
            if call_id not in out.call_ids:
                raise invalid(
                    f"No tool call found for function call output with call_id '{call_id[:64]}'. Send the "
                    "function_call item too, or continue the response with 'previous_response_id'.",
                    f"{where}.call_id",
                    "invalid_value",
                )
            output = item["output"]
            if isinstance(output, list):
                content: str | list[dict[str, str]] = [{"type": "text", "text": p["text"]} for p in output]
                if not content:
                    content = ""
            else:
                content = output
            out.add({"role": "tool", "tool_call_id": call_id, "content": content})
        else:  # reasoning
            text = reasoning_text(item)
            if text:
                out.pending_reasoning.append(text)
    return out.messages


def _message_to_chat(item: Item, out: _Messages) -> None:
    role = item["role"]
    parts = item["content"]
    if role == "assistant":
        message = out.assistant(join=False)
        text = "".join(p["text"] for p in parts if p["type"] != "refusal")
        refusals = [p["refusal"] for p in parts if p["type"] == "refusal"]
        message["content"] = text
        if refusals:
            message["refusal"] = "".join(refusals)
        return
    chat_parts: list[dict[str, Any]] = []
    for part in parts:
        kind = part["type"]
        if kind == "input_text":
            chat_parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image":
            image: dict[str, str] = {"url": part["image_url"]}
            # Chat Completions knows no "original" detail; leaving it out lets the engine decide.
            if part.get("detail") in ("auto", "low", "high"):
                image["detail"] = part["detail"]
            chat_parts.append({"type": "image_url", "image_url": image})
        else:
            chat_parts.append({"type": "input_audio", "input_audio": dict(part["input_audio"])})
    content: str | list[dict[str, Any]] = chat_parts
    if len(chat_parts) == 1 and chat_parts[0]["type"] == "text":
        content = chat_parts[0]["text"]
    out.add({"role": "user" if role == "user" else "system", "content": content})
