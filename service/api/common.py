"""Helpers every controller shares: the runtime, authentication, JSON bodies, OpenAI errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias, cast

import orjson
from litestar import Litestar, Request, Response
from litestar.datastructures import State

from service.auth.cache import AuthUnavailable
from service.auth.principal import Principal
from service.errors import GatewayError
from service.input_limits import MAX_JSON_DEPTH, check_depth, quick_depth_bound

if TYPE_CHECKING:
    from service.runtime import Runtime

JSON = "application/json"

# The gateway installs no Litestar authentication middleware (keys are checked by the handlers), so
# a request carries no `user` or `auth` value; its scope state is Litestar's plain State.
ApiRequest: TypeAlias = Request[None, None, State]


def app_runtime(app: Litestar) -> Runtime:
    """The Runtime the lifespan put on app.state (service.app.create_app)."""
    # Litestar's State is a mapping of Any; `runtime` is set once, to a Runtime, before any request.
    return cast("Runtime", app.state.runtime)


def runtime(request: ApiRequest) -> Runtime:
    return app_runtime(request.app)


async def authenticate(request: ApiRequest) -> Principal:
    return await authenticate_header(runtime(request), request.headers.get("authorization"))


async def authenticate_header(rt: Runtime, header: str | None) -> Principal:
    return await authenticate_key(rt, bearer_key(header))


def bearer_key(header: str | None) -> str:
    """The key of an `Authorization: Bearer <key>` header; GatewayError(401) otherwise."""
    if not header:
        raise GatewayError(401, "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
                           type="authentication_error", code="missing_api_key")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise GatewayError(401, "The Authorization header must be `Bearer <key>`.",
                           type="authentication_error", code="invalid_api_key")
    return key.strip()


async def authenticate_key(rt: Runtime, key: str) -> Principal:
    try:
        principal = await rt.auth.authenticate(key)
    except AuthUnavailable:
        raise GatewayError(503, "API keys cannot be checked right now (the database is unavailable); retry shortly.",
                           type="server_error", code="auth_unavailable", headers={"retry-after": "2"}) from None
    if principal is None:
        raise GatewayError(401, "Incorrect API key provided.", type="authentication_error", code="invalid_api_key")
    return principal


async def json_body(request: ApiRequest) -> Any:
    """The decoded JSON body."""
    check_content_type(request.headers.get("content-type", ""))
    return decode_json(await request.body())


async def optional_json_body(request: ApiRequest) -> Any:
    """The decoded JSON body, or {} when there is none at all. Whitespace alone is not JSON text
    (RFC 8259) and is refused like any other body that does not parse."""
    raw = await request.body()
    if not raw:
        return {}
    check_content_type(request.headers.get("content-type", ""))
    if not raw.strip():
        raise GatewayError(400, "The request body is only whitespace; send a JSON object or no body.",
                           code="invalid_json")
    return decode_json(raw)


def check_content_type(content_type: str) -> None:
    if content_type and "json" not in content_type.lower():
        raise GatewayError(415, "Send the body as application/json.", code="unsupported_media_type")


def decode_json(raw: bytes) -> Any:
    if not raw:
        raise GatewayError(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    # Before anything recursive (validation, re-encoding for the upstream) runs over it.
    if quick_depth_bound(raw) > MAX_JSON_DEPTH:
        check_depth(value)
    return value


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=orjson.dumps(data), status_code=status, media_type=JSON, headers=headers)


def error_response(err: GatewayError) -> Response[bytes]:
    return Response(content=err.encoded(), status_code=err.status, media_type=JSON, headers=err.wire_headers())
