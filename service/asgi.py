"""Small raw-ASGI helpers shared by the gateway's fast path and the stand-in upstreams."""

from __future__ import annotations

from typing import Any


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def declared_length(value: bytes | None) -> int | None:
    """The Content-Length a client declared, or None when absent or not a number."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def read_request_body(receive: Any, cap: int, declared: int | None = None) -> bytes | None:
    """The whole request body, or None when it exceeds `cap`; ClientGone on a disconnect.

    The cap holds while the body streams in, so a chunked body without a Content-Length is
    bounded too."""
    if declared is not None and declared > cap:
        return None
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
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


async def send_bytes(send: Any, status: int, content_type: bytes, body: bytes,
                     headers: dict[str, str] | None = None) -> None:
    raw = encode_headers(headers) if headers else []
    raw.append((b"content-type", content_type))
    raw.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
