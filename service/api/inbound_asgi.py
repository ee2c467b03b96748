"""The inbound APIs (Chat Completions, Anthropic Messages, OpenAI Responses) as a raw ASGI endpoint,
below Litestar's routing and response layers.

It is every platform's hot path: a benchmark profile put Litestar's routing, request and response
objects at about a third of a request's time in the gateway. Behaviour is the Litestar routes':
the same `run_inbound`, errors in the caller's API's shape with their headers, the body limit
enforced while the body streams in, and a stream cancelled when its client disconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import structlog
from litestar import Litestar

from service.api.chat import CHAT
from service.api.common import app_runtime
from service.api.inbound import STREAM_HEADERS, Endpoint, run_inbound
from service.api.messages import MESSAGES
from service.api.responses import RESPONSES
from service.asgi import (
    ASGIApp,
    BodyTimeout,
    ClientGone,
    Message,
    Receive,
    Scope,
    Send,
    body_timeout_error,
    declared_length,
    encode_headers,
    read_request_body,
    send_bytes,
)
from service.errors import GatewayError
from service.gateway.relay import Relay

if TYPE_CHECKING:
    from service.runtime import Runtime

log = structlog.get_logger("switchyard.app")

JSON = b"application/json"
TOO_LARGE = "The request body is larger than this gateway accepts."
# Anthropic's clients expect `ping` events while an answer is slow to come; idle proxies close
# connections that carry nothing for a minute.
KEEPALIVE_SECONDS = 15.0

ENDPOINTS: dict[str, Endpoint] = {}
for _endpoint, _paths in ((CHAT, ("/v1/chat/completions",)), (MESSAGES, ("/v1/messages",)),
                          (RESPONSES, ("/v1/responses",))):
    for _path in _paths:
        ENDPOINTS[_path] = _endpoint
        ENDPOINTS[_path + "/"] = _endpoint


class Chunks(Protocol):
    """What stream_body relays: a relay, or any async generator of bytes (the tests' stand-ins)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def aclose(self) -> Awaitable[None]: ...


def inbound_fast_path(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Wraps the Litestar ASGI handler: inbound POSTs are served here, everything else by `inner`."""

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = ENDPOINTS.get(scope["path"])
            if endpoint is not None:
                await serve_inbound(app_runtime(app), endpoint, scope, receive, send)
                return
        await inner(scope, receive, send)

    return handler


async def serve_inbound(rt: Runtime, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in (b"authorization", b"x-api-key", b"content-type", b"content-length", b"x-switchyard-tags"):
            headers[name.decode("latin-1")] = value.decode("latin-1")
    limit = rt.settings.max_body_bytes
    length = headers.get("content-length")

    async def read_body() -> bytes:
        try:
            raw = await read_request_body(receive, limit, declared_length(length.encode() if length else None))
        except BodyTimeout:
            raise body_timeout_error() from None
        if raw is None:
            raise GatewayError(413, TOO_LARGE, code="payload_too_large")
        return raw

    try:
        content, out_headers = await run_inbound(rt, endpoint, scope["state"]["request_id"], headers, read_body)
    except GatewayError as err:
        status, body, err_headers = endpoint.render_error(err)
        await send_bytes(send, status, JSON, body, err_headers)  # dropped if the client is gone
        return
    except Exception as exc:  # logged, and the client still gets an answer in its API's shape
        log.exception("unhandled_error", path=scope["path"], error=type(exc).__name__)
        internal = GatewayError(500, "Internal error in the gateway.", type="server_error", code="internal_error")
        status, body, err_headers = endpoint.render_error(internal)
        await send_bytes(send, status, JSON, body, err_headers)
        return
    if not isinstance(content, Relay):
        await send_bytes(send, 200, JSON, content, out_headers)
        return
    raw = encode_headers({**STREAM_HEADERS, **out_headers})
    raw.append((b"content-type", endpoint.stream_content_type))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw})
    except Exception:  # noqa: BLE001 - the server refused: the client is gone before the first byte
        send = _refused  # the relay still runs far enough to meter the attempt and close the upstream
    # Only some APIs' streams have a keepalive event (Anthropic's `ping`); StreamEncoder leaves it out.
    keepalive: Callable[[], bytes] | None = getattr(content.encoder, "keepalive", None)
    await stream_body(content, receive, send, keepalive=keepalive)


async def _refused(_message: Message) -> None:
    raise ClientGone


async def stream_body(chunks: Chunks, receive: Receive, send: Send, *, keepalive: Callable[[], bytes] | None = None,
                      keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
    """Relays the chunks; a client that disconnects cancels the relay where it waits (on the
    upstream), which meters what was used and closes the upstream call. With `keepalive`, its
    bytes are sent whenever the upstream has been silent for `keepalive_seconds`."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("stream_body runs in the request's task, which it cancels on a disconnect")
    state = {"relaying": True, "gone": False}

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if state["relaying"]:
            state["gone"] = True
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch_disconnect())
    source = chunks if keepalive is None else _with_keepalive(chunks, keepalive, keepalive_seconds)
    try:
        async for chunk in source:
            try:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except Exception:  # noqa: BLE001 - the server refused the write: the client is gone
                state["gone"] = True
                break
        state["relaying"] = False
        if not state["gone"]:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not state["gone"]:
            raise  # not ours: shutdown or the server cancelling the request
        task.uncancel()
    finally:
        state["relaying"] = False
        watcher.cancel()
        # Runs the relay's bookkeeping when it stopped early (a write refused); a no-op otherwise.
        await chunks.aclose()


async def _with_keepalive(chunks: Chunks, keepalive: Callable[[], bytes], every: float) -> AsyncIterator[bytes]:
    iterator = chunks.__aiter__()
    pending: asyncio.Task[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                ping = keepalive()
                if ping:
                    yield ping
                continue
            task, pending = pending, None
            try:
                yield task.result()
            except StopAsyncIteration:
                return
    finally:
        if pending is not None:
            # The relay must have finished its own bookkeeping before anyone closes it.
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
