"""POST /v1/messages (Anthropic's Messages API) and POST /v1/messages/count_tokens.

Claude Code and the anthropic SDKs speak this API; each request is translated to Chat Completions
(`service.inbound.messages_*`), routed, admitted, metered and billed exactly as a chat completion,
and its answer, stream and errors translated back into Anthropic's shapes. The key comes as
`x-api-key` (Claude Code) or `Authorization: Bearer` (the SDKs); `anthropic-version` and
`anthropic-beta` are accepted and need nothing from the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from litestar import Response, post
from litestar.response import Stream

from service.api.common import ApiRequest, authenticate_key, bearer_key, decode_json, runtime
from service.api.inbound import Prepared, serve_with_litestar
from service.auth.principal import Principal
from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.gateway.context import RequestContext
from service.gateway.relay import usage_json
from service.inbound.anthropic_errors import anthropic_error, anthropic_error_headers
from service.inbound.messages_request import MessagesRequest, count_tokens_to_chat, messages_to_chat
from service.inbound.messages_response import chat_to_message
from service.inbound.messages_stream import MessagesStream
from service.routing.estimate import base_prompt_estimate, cost_estimate
from service.routing.planner import Policy
from service.upstreams.base import Usage

if TYPE_CHECKING:
    from service.runtime import Runtime

JSON = "application/json"


class MessagesEncoder:
    """The relay's encoder for a Messages stream."""

    def __init__(self, request: MessagesRequest) -> None:
        self.stream = MessagesStream(request)

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return self.stream.feed(chunk)

    def end(self, usage: Usage | None, billed_usd: Decimal) -> bytes:
        tail = b""
        if usage is not None:
            tail = self.stream.feed({"choices": [], "usage": usage_json(usage, billed_usd)})
        return tail + self.stream.close()

    def fail(self, err: GatewayError) -> bytes:
        _, body = anthropic_error(err)
        return self.stream.error(body["error"]["message"], body["error"]["type"])

    def keepalive(self) -> bytes:
        return self.stream.ping()


def anthropic_key(headers: Mapping[str, str]) -> str:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    if headers.get("authorization"):
        return bearer_key(headers.get("authorization"))
    raise GatewayError(401, "You didn't provide an API key. Send it as `x-api-key: <key>` or "
                       "`Authorization: Bearer <key>`.", type="authentication_error", code="missing_api_key")


class MessagesEndpoint:
    api = "messages"
    stream_content_type = b"text/event-stream; charset=utf-8"

    def credentials(self, headers: Mapping[str, str]) -> str:
        return anthropic_key(headers)

    async def prepare(self, rt: Runtime, principal: Principal, body: object) -> Prepared:
        request = messages_to_chat(body)
        view = validate_chat_request(request.chat)

        def answer(completion: dict[str, Any]) -> dict[str, Any]:
            return chat_to_message(completion, request=request)

        def encoder(_ctx: RequestContext) -> MessagesEncoder:
            return MessagesEncoder(request)

        return Prepared(chat=request.chat, view=view, answer=answer, encoder=encoder)

    def render_error(self, err: GatewayError) -> tuple[int, bytes, dict[str, str]]:
        status, body = anthropic_error(err)
        return status, orjson.dumps(body), anthropic_error_headers(err)


MESSAGES = MessagesEndpoint()


@post("/v1/messages", status_code=200)
async def create_message(request: ApiRequest) -> Response[bytes] | Stream:
    return await serve_with_litestar(request, MESSAGES)


@post("/v1/messages/count_tokens", status_code=200)
async def count_tokens(request: ApiRequest) -> Response[bytes]:
    """The gateway's own estimate of the prompt's tokens (no upstream is asked), calibrated to the
    model when one model is named."""
    rt = runtime(request)
    try:
        principal = await authenticate_key(rt, anthropic_key(request.headers))
        chat = count_tokens_to_chat(decode_json(await request.body()))
        base = base_prompt_estimate(chat, _images(chat))
        planner = rt.routing.planner
        models = planner.models_for(chat["model"], None, _policy(principal))
        ratio = planner.calibration.prompt_ratio(models[0]) if len(models) == 1 else 1.0
        return Response(content=orjson.dumps({"input_tokens": cost_estimate(base, ratio)}), media_type=JSON)
    except GatewayError as err:
        status, body = anthropic_error(err)
        return Response(content=orjson.dumps(body), status_code=status, media_type=JSON,
                        headers=anthropic_error_headers(err))


def _images(chat: dict[str, Any]) -> int:
    count = 0
    for message in chat.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return count


def _policy(principal: Principal) -> Policy:
    return Policy(allowed_models=principal.allowed_models, denied_front_ends=principal.denied_front_ends,
                  tenant=principal.tenant_id)
