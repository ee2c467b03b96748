"""POST /v1/chat/completions and POST /v1/quote: thin controllers over the gateway.

Chat requests are served by `service.api.chat_asgi` below Litestar (the route here stays for
the published OpenAPI schema and for apps built without the fast path); both run `run_chat`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson
from litestar import Request, Response, post
from litestar.response import Stream

from service.api.common import (
    JSON,
    authenticate,
    authenticate_header,
    check_content_type,
    decode_json,
    json_body,
    json_response,
    runtime,
)
from service.asgi import ClientGone
from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.gateway.context import RequestContext
from service.gateway.relay import ChatEncoder, Relay
from service.metering.pricing import billed_amount

if TYPE_CHECKING:
    from service.runtime import Runtime

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def run_chat(rt: Runtime, request_id: str, authorization: str | None, content_type: str,
                   read_body: Callable[[], Awaitable[bytes]]) -> tuple[bytes | Relay, dict[str, str], bool]:
    """One chat request up to its answer: (body bytes or the stream's relay, headers, streamed).

    Raises GatewayError for the client; every refusal is counted and logged before it leaves."""
    principal = None
    try:
        principal = await authenticate_header(rt, authorization)
        check_content_type(content_type)
        body = decode_json(await read_body())
        view = validate_chat_request(body)
    except GatewayError as err:
        rt.gateway.rejected(request_id, err, principal.tenant_id if principal else None)
        raise
    except ClientGone:
        # Nothing reached an upstream, so there is no usage row; counted and logged all the same.
        err = GatewayError(499, "The client disconnected before its request arrived.", code="client_disconnected")
        rt.gateway.rejected(request_id, err, principal.tenant_id if principal else None)
        raise err from None
    ctx = RequestContext(request_id=request_id, principal=principal, requested_model=view.model,
                         stream=view.stream)
    try:
        if view.stream:
            relay, headers = await rt.gateway.stream(ctx, body, view, ChatEncoder.for_body(body))
            return relay, headers, True  # a stream finishes when its relay ends
        answer = await rt.gateway.complete(ctx, body, view)
    except GatewayError as err:
        err.headers = {**ctx.extra_headers, **err.headers}
        ctx.status = err.status
        ctx.error_code = ctx.error_code or err.code
        rt.gateway.finish(ctx)
        raise
    except BaseException:
        ctx.status, ctx.error_code = 499, ctx.error_code or "client_disconnected"
        rt.gateway.finish(ctx)
        raise
    rt.gateway.finish(ctx)
    return orjson.dumps(answer.body), answer.headers, False


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request) -> Response | Stream:
    content, headers, stream = await run_chat(
        runtime(request), request.scope["state"]["request_id"], request.headers.get("authorization"),
        request.headers.get("content-type", ""), request.body)
    if stream:
        return Stream(content, media_type="text/event-stream", headers={**STREAM_HEADERS, **headers})
    return Response(content=content, media_type=JSON, headers=headers)


@post("/v1/quote", status_code=200)
async def quote(request: Request) -> Response:
    rt = runtime(request)
    principal = await authenticate(request)
    body = await json_body(request)
    view = validate_chat_request(body)
    ctx = RequestContext(request_id=request.scope["state"]["request_id"], principal=principal,
                         requested_model=view.model, stream=view.stream)
    needs, plan = await rt.gateway.plan(ctx, body, view)
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
