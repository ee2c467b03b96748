"""Small raw-ASGI helpers shared by the gateway's fast path and the stand-in upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

from service.errors import GatewayError

# ASGI's scope and events are plain mappings whose value types depend on their "type" key; each
# reader checks that key before it reads the rest. The shapes match httpx's and Starlette's.
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class BodyTimeout(Exception):
    """The request body stopped arriving: nothing came for the idle timeout."""


BODY_TIMEOUT_MESSAGE = "The request body stopped arriving before it was complete."


def body_timeout_error() -> GatewayError:
    # The connection cannot carry another request after a body cut short: it is closed.
    return GatewayError(408, BODY_TIMEOUT_MESSAGE, code="request_timeout", headers={"connection": "close"})


def body_timeout_middleware(app: ASGIApp, idle_seconds: float) -> ASGIApp:
    """Every wait for a piece of the request body is bounded: a client that declares a length and
    stops sending (or trickles nothing) raises BodyTimeout in whoever reads the body, which the
    app answers with a 408. As nginx's client_body_timeout, the bound is between two pieces, so a
    large body on a slow link still arrives. Waits after the body (for a disconnect, during a
    stream) are not bounded."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(idle_seconds):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout from None
            if message["type"] != "http.request" or not message.get("more_body"):
                body_done = True
            return message

        await app(scope, timed_receive, send)

    return middleware


def declared_length(value: bytes | None) -> int | None:
    """The Content-Length a client declared, or None when absent or not a number."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def read_request_body(receive: Receive, cap: int, declared: int | None = None) -> bytes | None:
    """The whole request body, or None when it exceeds `cap`; ClientGone on a disconnect.

    The cap holds while the body streams in, so a chunked body without a Content-Length is
    bounded too."""
    if declared is not None and declared > cap:
        return None
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        if not message.get("more_body"):
            if not parts:
                return chunk
            parts.append(chunk)
            return b"".join(parts)
        parts.append(chunk)


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def send_bytes(send: Send, status: int, content_type: bytes, body: bytes,
                     headers: dict[str, str] | None = None) -> None:
    raw = encode_headers(headers) if headers else []
    raw.append((b"content-type", content_type))
    raw.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, err: GatewayError) -> None:
    """An error in OpenAI's shape, straight on the ASGI channel (for the layers below Litestar)."""
    await send_bytes(send, err.status, b"application/json", err.encoded(), err.wire_headers())
