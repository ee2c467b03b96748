"""Server-sent events: an incremental parser for upstream streams and the encoder for clients."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import orjson

DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"


def encode_chunk(chunk: Mapping[str, object]) -> bytes:
    """One OpenAI stream event, framed byte-exact as OpenAI does (LF separators, no event: line)."""
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class SSEParser:
    """Feed bytes as they arrive; get back the `data` payload of each complete event.

    Tolerates CRLF and CR line endings, comments, `event:`/`id:`/`retry:` fields and multi-line
    data, as the SSE specification allows; a payload is only yielded once its blank line arrives.
    """

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # A lone CR may be the first half of a CRLF split across reads: keep it for the next feed.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer[:-1] if keep_cr else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buffer += b"\r"
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if not line:
                if self._data:
                    payload = b"\n".join(self._data)
                    self._data = []
                    yield payload
                continue
            self._field(line)

    def _field(self, line: bytes) -> None:
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)

    def close(self) -> bytes | None:
        """At end of input: an event left without its blank line, if any (a cut stream)."""
        # The leftover is one line: unterminated, or ended by a lone CR held back as a possible CRLF.
        leftover = self._buffer.rstrip(b"\r")
        if leftover:
            self._field(leftover)
        self._buffer = b""
        if self._data:
            payload = b"\n".join(self._data)
            self._data = []
            return payload
        return None
