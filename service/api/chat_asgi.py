"""POST /v1/chat/completions as a raw ASGI endpoint, below Litestar's routing and response layers.

It is every platform's hot path: a benchmark profile put Litestar's routing, request and response
objects at about a third of a request's time in the gateway. Behaviour is the Litestar route's:
the same `run_chat`, OpenAI-shaped errors with their headers, the body limit enforced while the
body streams in, and a stream cancelled when its client disconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog

from service.api.chat import STREAM_HEADERS, run_chat
from service.asgi import (
    BodyTimeout,
    ClientGone,
    body_timeout_error,
    declared_length,
    encode_headers,
    read_request_body,
    send_bytes,
    send_error,
)
from service.errors import GatewayError

log = structlog.get_logger("switchyard.app")

PATHS = frozenset({"/v1/chat/completions", "/v1/chat/completions/"})
JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"
TOO_LARGE = "The request body is larger than this gateway accepts."


def chat_fast_path(inner: Any, app: Any) -> Any:
    """Wraps the Litestar ASGI handler: chat POSTs are served here, everything else by `inner`."""

    async def handler(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in PATHS:
            await serve_chat(app.state.runtime, scope, receive, send)
        else:
            await inner(scope, receive, send)

    return handler


async def serve_chat(rt: Any, scope: dict, receive: Any, send: Any) -> None:
    authorization = content_type = length = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            length = value
    limit = rt.settings.max_body_bytes

    async def read_body() -> bytes:
        try:
            raw = await read_request_body(receive, limit, declared_length(length))
        except BodyTimeout:
            raise body_timeout_error() from None
        if raw is None:
            raise GatewayError(413, TOO_LARGE, code="payload_too_large")
        return raw

    try:
        content, headers, stream = await run_chat(rt, scope["state"]["request_id"], authorization,
                                                  content_type or "", read_body)
    except GatewayError as err:
        await send_error(send, err)  # dropped if the client is gone
        return
    except Exception as exc:
        log.exception("unhandled_error", path=scope["path"], error=type(exc).__name__)
        await send_error(send, GatewayError(500, "Internal error in the gateway.", type="server_error",
                                            code="internal_error"))
        return
    if not stream:
        await send_bytes(send, 200, JSON, content, headers)
        return
    raw = encode_headers({**STREAM_HEADERS, **headers})
    raw.append((b"content-type", EVENT_STREAM))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw})
    except Exception:  # noqa: BLE001 - the server refused: the client is gone before the first byte
        send = _refused  # the relay still runs far enough to meter the attempt and close the upstream
    await stream_body(content, receive, send)


async def _refused(_message: dict) -> None:
    raise ClientGone


async def stream_body(chunks: AsyncIterator[bytes], receive: Any, send: Any) -> None:
    """Relays the chunks; a client that disconnects cancels the relay where it waits (on the
    upstream), which meters what was used and closes the upstream call."""
    task = asyncio.current_task()
    state = {"relaying": True, "gone": False}

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if state["relaying"]:
            state["gone"] = True
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch_disconnect())
    try:
        async for chunk in chunks:
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
