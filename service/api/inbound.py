"""One request in whatever API the client speaks, up to its answer: the flow every inbound endpoint
shares (authenticate, decode, translate to Chat Completions, route through the gateway, translate
back), so that planning, admission, attempts and metering never know which API the caller used.

An `Endpoint` says how its API names the key, translates a body, renders an answer, a stream and
an error; `run_inbound` does the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from litestar import Response
from litestar.response import Stream

from service.api.common import ApiRequest, authenticate_key, check_content_type, decode_json, runtime
from service.asgi import ClientGone
from service.auth.principal import Principal
from service.chat.validate import ChatRequestView
from service.errors import GatewayError
from service.gateway.attribution import read_attribution
from service.gateway.context import RequestContext
from service.gateway.relay import Relay, StreamEncoder

if TYPE_CHECKING:
    from service.runtime import Runtime


@dataclass(slots=True)
class Prepared:
    """One request translated to Chat Completions, and how to answer it in the caller's API."""

    chat: dict[str, Any]
    view: ChatRequestView
    answer: Callable[[dict[str, Any]], dict[str, Any]]  # a whole chat completion -> the caller's body
    encoder: Callable[[RequestContext], StreamEncoder]
    # Awaited once the answer is complete, before its last bytes leave (stored responses).
    after: Callable[[RequestContext, dict[str, Any] | None], Awaitable[None]] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Endpoint(Protocol):
    api: str  # chat | messages | responses
    stream_content_type: bytes

    def credentials(self, headers: Mapping[str, str]) -> str:
        """The API key as this API's clients send it; GatewayError(401) when absent."""
        ...

    async def prepare(self, rt: Runtime, principal: Principal, body: object) -> Prepared: ...

    def render_error(self, err: GatewayError) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of an error in this API's shape."""
        ...


async def run_inbound(rt: Runtime, endpoint: Endpoint, request_id: str, headers: Mapping[str, str],
                      read_body: Callable[[], Awaitable[bytes]]) -> tuple[bytes | Relay, dict[str, str]]:
    """(the whole answer's bytes, or the relay of a stream; headers). Raises GatewayError for the
    client; every refusal is counted and logged before it leaves."""
    principal: Principal | None = None
    try:
        principal = await authenticate_key(rt, endpoint.credentials(headers))
        check_content_type(headers.get("content-type", ""))
        body = decode_json(await read_body())
        prepared = await endpoint.prepare(rt, principal, body)
        attribution = read_attribution(prepared.chat, headers)
    except GatewayError as err:
        rt.gateway.rejected(request_id, err, principal.tenant_id if principal else None)
        raise
    except ClientGone:
        # Nothing reached an upstream, so there is no usage row; counted and logged all the same.
        gone = GatewayError(499, "The client disconnected before its request arrived.", code="client_disconnected")
        rt.gateway.rejected(request_id, gone, principal.tenant_id if principal else None)
        raise gone from None
    view = prepared.view
    ctx = RequestContext(request_id=request_id, principal=principal, requested_model=view.model,
                         stream=view.stream, api=endpoint.api)
    attribution.apply(ctx)
    try:
        if view.stream:
            relay, out_headers = await rt.gateway.stream(ctx, prepared.chat, view, prepared.encoder(ctx))
            if prepared.after is not None:
                after = prepared.after
                relay.after = lambda: after(ctx, None)
            return relay, {**out_headers, **prepared.headers}  # it finishes when its relay ends
        answer = await rt.gateway.complete(ctx, prepared.chat, view)
        body_out = prepared.answer(answer.body)
        if prepared.after is not None:
            await prepared.after(ctx, body_out)
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
    return orjson.dumps(body_out), {**answer.headers, **prepared.headers}


STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def serve_with_litestar(request: ApiRequest, endpoint: Endpoint) -> Response[bytes] | Stream:
    """The same flow as a Litestar route, for the published OpenAPI schema and apps built without
    the raw ASGI fast path (service.api.inbound_asgi); errors in the endpoint's own shape."""
    try:
        content, headers = await run_inbound(runtime(request), endpoint, request.scope["state"]["request_id"],
                                             request.headers, request.body)
    except GatewayError as err:
        status, body, err_headers = endpoint.render_error(err)
        return Response(content=body, status_code=status, media_type="application/json", headers=err_headers)
    if isinstance(content, Relay):
        return Stream(content, media_type=endpoint.stream_content_type.decode(),
                      headers={**STREAM_HEADERS, **headers})
    return Response(content=content, media_type="application/json", headers=headers)
