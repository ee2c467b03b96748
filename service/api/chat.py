"""POST /v1/chat/completions and POST /v1/quote: thin controllers over the gateway.

Chat requests are served by `service.api.inbound_asgi` below Litestar (the route here stays for
the published OpenAPI schema and for apps built without the fast path); both run `run_inbound`
with the `ChatEndpoint`."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from litestar import Response, post
from litestar.response import Stream

from service.api.common import ApiRequest, authenticate, bearer_key, json_body, json_response, runtime
from service.api.inbound import Prepared, serve_with_litestar
from service.auth.principal import Principal
from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.gateway.context import RequestContext
from service.gateway.relay import ChatEncoder
from service.metering.pricing import billed_amount

if TYPE_CHECKING:
    from service.runtime import Runtime



class ChatEndpoint:
    """OpenAI Chat Completions: the gateway's own form, translated by nothing."""

    api = "chat"
    stream_content_type = b"text/event-stream; charset=utf-8"

    def credentials(self, headers: Mapping[str, str]) -> str:
        return bearer_key(headers.get("authorization"))

    async def prepare(self, rt: Runtime, principal: Principal, body: object) -> Prepared:
        view = validate_chat_request(body)
        if not isinstance(body, dict):
            # validate_chat_request refuses any other body with a 400; this tells the type checker.
            raise TypeError("validate_chat_request accepted a body that is not a JSON object")
        return Prepared(chat=body, view=view, answer=_same, encoder=lambda _ctx: ChatEncoder.for_body(body))

    def render_error(self, err: GatewayError) -> tuple[int, bytes, dict[str, str]]:
        return err.status, err.encoded(), err.wire_headers()


def _same(completion: dict[str, Any]) -> dict[str, Any]:
    return completion


CHAT = ChatEndpoint()


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: ApiRequest) -> Response[bytes] | Stream:
    return await serve_with_litestar(request, CHAT)


@post("/v1/quote", status_code=200)
async def quote(request: ApiRequest) -> Response[bytes]:
    rt = runtime(request)
    principal = await authenticate(request)
    body = await json_body(request)
    view = validate_chat_request(body)
    ctx = RequestContext(request_id=request.scope["state"]["request_id"], principal=principal,
                         requested_model=view.model, stream=view.stream)
    needs, plan = await rt.gateway.plan(ctx, body, view, serving=False)
    markup = principal.markup

    def billed(amount: Decimal) -> Decimal:
        return billed_amount(amount, markup)

    # Every figure is what this tenant would be billed: its markup applied, as on its answers.
    out = plan.as_json(billed)
    out["estimated_prompt_tokens"] = needs.base_prompt_tokens
    out["max_attempts"] = rt.settings.max_attempts
    out["worst_case_usd"] = str(billed(plan.worst_case(rt.settings.max_attempts)))
    out["price_version"] = rt.catalog.version
    return json_response(out)
