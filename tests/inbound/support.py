"""Helpers shared by the Messages translation tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.chat.validate import ChatRequestView, validate_chat_request
from service.errors import GatewayError
from service.inbound.messages_request import MessagesRequest, messages_to_chat

FIXTURES = Path(__file__).parent / "fixtures"
RECORDINGS = Path(__file__).parents[1] / "recordings"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def body(**fields: Any) -> dict[str, Any]:
    """A minimal valid Messages body, with `fields` added or replaced."""
    out: dict[str, Any] = {"model": "moonshotai/Kimi-K2.6", "max_tokens": 4096, "messages": [user("hi")]}
    out.update(fields)
    return out


def user(*content: Any) -> dict[str, Any]:
    return {
        "role": "user",
        "content": content[0] if len(content) == 1 and isinstance(content[0], str) else list(content),
    }


def assistant(*content: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content[0] if len(content) == 1 and isinstance(content[0], str) else list(content),
    }


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def tool_use(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def tool_result(call_id: str, content: Any = None, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, **extra}
    if content is not None:
        block["content"] = content
    return block


def chat_view(request: MessagesRequest) -> ChatRequestView:
    """The chat validator's verdict on a translation (`reasoning` is the one field it lacks)."""
    chat = {key: value for key, value in request.chat.items() if key != "reasoning"}
    return validate_chat_request(chat)


def translate(payload: dict[str, Any]) -> MessagesRequest:
    """Translate, and check the chat body is one the gateway's validator accepts."""
    request = messages_to_chat(payload)
    chat_view(request)
    return request


def refused(payload: object, param: str | None) -> GatewayError:
    """Translate a body that must be refused with a 400 naming `param`."""
    with pytest.raises(GatewayError) as caught:
        messages_to_chat(payload)
    err = caught.value
    assert (err.status, err.type, err.param) == (400, "invalid_request_error", param), err.message
    return err


# A custom tool as Claude Code declares one.
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def chat_messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The Chat Completions messages a Messages request becomes."""
    return translate(payload).chat["messages"]
