"""The Litestar application factory. Nothing here runs at import; create_app builds it all."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast

import structlog
from litestar import Litestar, Response
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp as LitestarASGIApp

from service.api.admin_alerts import ALERT_HANDLERS
from service.api.admin_routes import ADMIN_HANDLERS
from service.api.allow import options_middleware
from service.api.chat import chat_completions, quote
from service.api.common import ApiRequest, error_response
from service.api.health import healthz, metrics, readyz, root, root_head
from service.api.inbound_asgi import inbound_fast_path
from service.api.messages import count_tokens, create_message
from service.api.models import list_models, retrieve_model
from service.api.openapi import openapi_json, openapi_root
from service.api.responses import create_response, get_response, remove_response
from service.api.usage import USAGE_HANDLERS
from service.asgi import (
    ASGIApp,
    BodyTimeout,
    Message,
    Receive,
    Scope,
    Send,
    body_timeout_error,
    body_timeout_middleware,
    send_error,
)
from service.console import CONSOLE_HANDLERS
from service.errors import GatewayError
from service.gc_tuning import tune_gc
from service.observability.logging import configure_logging
from service.runtime import Runtime
from service.settings import Settings, load_settings
from service.worker_signals import hold_stop_signals, worker_started

log = structlog.get_logger("switchyard.app")

# Total request header bytes accepted. nginx's default ceiling is 32 KB; the HTTP servers buffer far
# more (granian about 400 KB, h11 up to 256 KB per read), which would let every request carry that.
MAX_HEADER_BYTES = 32 * 1024

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


def _gateway_error(_: ApiRequest, exc: GatewayError) -> Response[bytes]:
    return error_response(exc)


def _http_error(_: ApiRequest, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    kind = _STATUS_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    message = str(exc.detail) if exc.detail else "Request failed"
    if status == 413:
        message = "The request body is larger than this gateway accepts."
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(status)
    return error_response(GatewayError(status, message, type=kind, code=code, headers=dict(exc.headers or {})))


def _body_timeout(_: ApiRequest, _exc: BodyTimeout) -> Response[bytes]:
    return error_response(body_timeout_error())


def _unexpected(request: ApiRequest, exc: Exception) -> Response[bytes]:
    # The path is the client's: logged in a bounded piece. Litestar calls this handler with the
    # exception in hand, so its traceback is passed explicitly rather than read from sys.exc_info.
    log.error("unhandled_error", path=request.url.path[:200], error=type(exc).__name__, exc_info=exc)
    return error_response(GatewayError(500, "Internal error in the gateway.", type="server_error",
                                       code="internal_error"))


class _RequestIds:
    """New request ids: `req_` and 32 hex digits, as uuid4().hex gave, from a random per-process
    prefix and a counter (a fifth of uuid4's cost; ids are labels, not secrets). A forked child
    draws its own prefix."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = f"req_{secrets.token_hex(8)}"
        self._count = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFFFFFF:016x}"


_request_ids: _RequestIds | None = None


def new_request_id() -> str:
    global _request_ids  # noqa: PLW0603 - one source per process, made on first use
    if _request_ids is None:
        _request_ids = _RequestIds()
    return _request_ids.new()


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """x-request-id on every response: the client's own if it sent a sane one, else a new one."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    request_id = candidate
                break
        request_id = request_id or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        # bind and reset by hand: bound_contextvars's generator-based context manager cost as much.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    return middleware


def header_limit_middleware(app: ASGIApp, limit: int = MAX_HEADER_BYTES) -> ASGIApp:
    """Refuse oversized header blocks with 431 in OpenAI's shape, before any routing or auth work."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(n) + len(v) for n, v in scope["headers"]) > limit:
            message = f"The request headers are larger than this gateway accepts ({limit} bytes)."
            await send_error(send, GatewayError(431, message, code="headers_too_large"))
            return
        await app(scope, receive, send)

    return middleware


def create_app(settings: Settings, *, runtime: Runtime | None = None,
               on_started: Callable[[], object] | None = None) -> Litestar:
    configure_logging(settings.log_level, settings.log_json, secrets=settings.secret_values())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        app.state.runtime = rt
        await rt.start()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            await rt.stop()

    app = Litestar(
        route_handlers=[chat_completions, quote, create_message, count_tokens, create_response, get_response,
                        remove_response, list_models, retrieve_model, healthz, readyz, metrics, root, root_head,
                        openapi_json, openapi_root, *ADMIN_HANDLERS, *ALERT_HANDLERS, *USAGE_HANDLERS,
                        *CONSOLE_HANDLERS],
        lifespan=[lifespan],
        exception_handlers={GatewayError: _gateway_error, HTTPException: _http_error, BodyTimeout: _body_timeout,
                            Exception: _unexpected},
        request_max_body_size=settings.max_body_bytes,
        # The published document is service.api.openapi's, which says what the API really does.
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    # Around the whole ASGI handler rather than as Litestar middleware, which only runs for matched
    # routes: the router's own 404 and 405 answers get an x-request-id too.
    chain = request_id_middleware(header_limit_middleware(options_middleware(body_timeout_middleware(
        inbound_fast_path(_plain(app.asgi_handler), app), settings.body_timeout_seconds), app)))
    app.asgi_handler = _litestar(chain)
    return app


# Litestar types ASGI scopes and events as TypedDicts; the middlewares above read them as the
# plain dicts they are at run time (service.asgi's aliases). The two views meet only here.
def _plain(handler: LitestarASGIApp) -> ASGIApp:
    return cast(ASGIApp, handler)


def _litestar(handler: ASGIApp) -> LitestarASGIApp:
    return cast(LitestarASGIApp, handler)


def app_from_env() -> Litestar:
    """Factory for the production server (granian --factory)."""
    hold_stop_signals()
    settings = load_settings()
    tune_gc(settings.gc_threshold)
    return create_app(settings, on_started=worker_started)
