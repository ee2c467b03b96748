"""What the Responses request tests share: translating a body (and checking the chat form passes the
gateway's own validator), a refusal, and the items they are built from."""

from __future__ import annotations

from typing import Any

import pytest

from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.inbound.responses_request import ResponsesRequest, responses_to_chat


def translate(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> ResponsesRequest:
    request = responses_to_chat({"model": "moonshotai/Kimi-K2.6", **body}, history=history)
    validate_chat_request(request.chat)  # every translation must pass the gateway's own validator
    return request


def refused(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        responses_to_chat({"model": "moonshotai/Kimi-K2.6", **body}, history=history)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    return caught.value


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def call(call_id: str, name: str = "lookup", arguments: str = '{"q": 1}') -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output(call_id: str, text: str = "42") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


LOOKUP = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
