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


class _IdleReads:
    """The body reads in progress on one event loop, checked by one timer. A per-read
    asyncio.timeout (a timer scheduled and cancelled around every receive) was about 5% of a
    worker's time under load; here a read costs two dict operations, and the timer runs only while
    some read is waiting, every quarter of the bound (at most a second). A read that has waited
    the bound is cancelled, as asyncio.timeout would, and raises BodyTimeout in its reader."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle = idle_seconds
        self.period = min(1.0, idle_seconds / 4)
        self.waiting: dict[asyncio.Task[object], float] = {}
        self.expired: set[asyncio.Task[object]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: asyncio.TimerHandle | None = None

    async def receive(self, receive: Receive) -> Message:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a body read runs in a task")
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # a new loop (a restarted app in tests): nothing carries over
            self.loop, self.timer = loop, None
            self.waiting.clear()
            self.expired.clear()
        self.waiting[task] = loop.time()
        if self.timer is None:
            self.timer = loop.call_later(self.period, self._sweep)
        try:
            return await receive()
        except asyncio.CancelledError:
            if task in self.expired:
                self.expired.discard(task)
                task.uncancel()
                raise BodyTimeout from None
            raise
        finally:
            self.waiting.pop(task, None)

    def _sweep(self) -> None:
        self.timer = None
        if self.loop is None:
            return
        now = self.loop.time()
        for task, since in list(self.waiting.items()):
            if now - since >= self.idle:
                del self.waiting[task]
                self.expired.add(task)
                task.cancel()
        if self.waiting:
            self.timer = self.loop.call_later(self.period, self._sweep)


def body_timeout_middleware(app: ASGIApp, idle_seconds: float) -> ASGIApp:
    """Every wait for a piece of the request body is bounded: a client that declares a length and
    stops sending (or trickles nothing) raises BodyTimeout in whoever reads the body, which the
    app answers with a 408. As nginx's client_body_timeout, the bound is between two pieces, so a
    large body on a slow link still arrives. Waits after the body (for a disconnect, during a
    stream) are not bounded."""
    reads = _IdleReads(idle_seconds)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            message = await reads.receive(receive)
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
