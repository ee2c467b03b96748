"""POST /v1/chat/completions and POST /v1/quote: thin controllers over the gateway."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.response import Stream

from service.api.common import JSON, authenticate, json_body, json_response, runtime
from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.gateway.context import RequestContext

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request) -> Response | Stream:
    rt = runtime(request)
    principal = None
    try:
        principal = await authenticate(request)
        body = await json_body(request)
        view = validate_chat_request(body)
    except GatewayError as err:
        rt.gateway.rejected(request.scope["state"]["request_id"], err, principal)
        raise
    ctx = RequestContext(
        request_id=request.scope["state"]["request_id"],
        principal=principal,
        requested_model=view.model,
        stream=view.stream,
    )
    try:
        content, headers = await rt.gateway.handle(ctx, body, view)
    except GatewayError as err:
        err.headers = {**ctx.extra_headers, **err.headers}
        ctx.status = err.status
        ctx.error_code = ctx.error_code or err.code
        rt.gateway.finish(ctx)
        raise
    if view.stream:
        return Stream(content, media_type="text/event-stream", headers={**STREAM_HEADERS, **headers})
    rt.gateway.finish(ctx)
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
    out = plan.as_json()
    out["estimated_prompt_tokens"] = needs.base_prompt_tokens
    out["max_attempts"] = rt.settings.max_attempts
    out["worst_case_usd"] = str(plan.worst_case(rt.settings.max_attempts))
    out["price_version"] = rt.catalog.version
    return json_response(out)
