"""Baseten's Model APIs, called directly: OpenAI's wire format, billed per token."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import yarl

from service.catalog.model import Route
from service.chat.sse import DONE, SSEParser
from service.errors import ErrorKind, UpstreamError
from service.settings import Timeouts
from service.upstreams.base import Completion, Evidence, Usage
from service.upstreams.errors_map import from_status

if TYPE_CHECKING:
    # What ClientSession.post returns (awaitable, or an async context manager); aiohttp names it
    # only privately.
    from aiohttp.client import _RequestContextManager

# Fields of the gateway's own request extensions, never sent upstream.
GATEWAY_ONLY_FIELDS = ("provider", "models")


def upstream_body(route: Route, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The body as the upstream should see it: the client's fields, the routed model, usage asked."""
    out = {k: v for k, v in body.items() if k not in GATEWAY_ONLY_FIELDS}
    out["model"] = route.model
    if stream:
        out["stream"] = True
        options = dict(out.get("stream_options") or {})
        # Usage is needed for metering whatever the client asked; the relay hides it if unwanted.
        options["include_usage"] = True
        out["stream_options"] = options
    else:
        out.pop("stream", None)
        out.pop("stream_options", None)
    return out


_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


def _transport_error(exc: BaseException, limit: float, what: str) -> UpstreamError:
    """A transport failure in the taxonomy: no connection is CONNECT, a read that timed out is
    TIMEOUT, an answer that broke after it started is PROTOCOL; `limit` was the deadline."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamError(ErrorKind.CONNECT, f"connection failed: {type(exc).__name__}")
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return UpstreamError(ErrorKind.TIMEOUT, f"timed out: {type(exc).__name__}")
    if isinstance(exc, TimeoutError):
        return UpstreamError(ErrorKind.TIMEOUT, f"{what} within {limit:g} s")
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        return UpstreamError(ErrorKind.PROTOCOL, f"answer broken: {type(exc).__name__}")
    return UpstreamError(ErrorKind.CONNECT, f"connection failed: {type(exc).__name__}")


class BasetenAdapter:
    front_end = "baseten"

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str, timeouts: Timeouts) -> None:
        # aiohttp directly, not through httpx: `python -m benchmarks.transport` measured 0.11 ms of
        # client CPU a request against 0.20 ms for httpx Requests over the same aiohttp pool.
        self._session = session
        self._url = yarl.URL(base_url.rstrip("/") + "/chat/completions")
        # Baseten documents the Api-Key scheme; the recorded traffic used it successfully.
        self._headers = {"Authorization": f"Api-Key {api_key}", "Content-Type": "application/json"}
        # sock_read bounds each read, so a stream that stalls between chunks ends too.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.connect, sock_read=timeouts.first_byte)
        self._timeouts = timeouts

    async def complete(self, route: Route, body: dict[str, Any], *, key: int = 0) -> Completion:
        payload = orjson.dumps(upstream_body(route, body, stream=False))
        limit = self._timeouts.total
        # A plain try rather than a context manager: on every request, the generator-based one cost
        # as much as the deadline itself.
        try:
            async with asyncio.timeout(limit), self._post(payload) as response:
                content = await response.read()
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(exc, limit, "no answer") from None
        request_id = response.headers.get("x-baseten-request-id")
        if response.status != 200:
            err = from_status(response.status, content, response.headers)
            err.evidence.upstream_request_id = request_id
            raise err
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamError(ErrorKind.PROTOCOL, "answer is not JSON", upstream_status=200) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(ErrorKind.PROTOCOL, "answer has no choices", upstream_status=200)
        evidence = Evidence(usage=Usage.from_openai(data.get("usage")), upstream_request_id=request_id)
        choices = data["choices"]
        if choices and isinstance(choices[0], dict):
            evidence.finish_reason = choices[0].get("finish_reason")
        return Completion(body=data, evidence=evidence)

    async def stream(self, route: Route, body: dict[str, Any], *, key: int = 0) -> BasetenStream:
        payload = orjson.dumps(upstream_body(route, body, stream=True))
        deadline = time.monotonic() + self._timeouts.total
        limit = self._timeouts.first_byte
        try:
            async with asyncio.timeout(limit):
                response = await self._post(payload)
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(exc, limit, "no first byte") from None
        request_id = response.headers.get("x-baseten-request-id")
        if response.status != 200:
            try:
                async with asyncio.timeout(self._timeouts.first_byte):
                    content = await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                content = b""
            finally:
                response.close()
            err = from_status(response.status, content, response.headers)
            err.evidence.upstream_request_id = request_id
            raise err
        stream = BasetenStream(response, request_id, deadline, self._timeouts.first_byte)
        await stream.prime()
        return stream

    def _post(self, payload: bytes) -> _RequestContextManager:
        return self._session.post(self._url, data=payload, headers=self._headers, timeout=self._timeout,
                                  allow_redirects=False)

    async def aclose(self) -> None:
        return None  # the session belongs to the runtime


class BasetenStream:
    """Reads Baseten's SSE to `[DONE]` (never stopping at the first finish_reason, see the
    DeepSeek recording), keeping the latest cumulative usage so a cut stream is still metered.

    A body that ends without `[DONE]` after the finish reason and the usage arrived is complete
    (a recorded GLM-5.2 stream with `stop` did exactly that); without them it is broken."""

    def __init__(self, response: aiohttp.ClientResponse, request_id: str | None, deadline: float,
                 first_byte: float) -> None:
        self._response = response
        self._deadline = deadline
        self._first_byte = first_byte
        self._parser = SSEParser()
        self._pending: deque[dict[str, Any]] = deque()
        self._buffered: deque[bytes] = deque()
        self._finished = False
        self._evidence = Evidence(upstream_request_id=request_id)
        # Baseten repeats the cumulative usage on every chunk; only the latest matters, so it is
        # kept raw and parsed once, when the evidence is read.
        self._raw_usage: dict[str, Any] | None = None
        self._parsed_usage: dict[str, Any] | None = None
        self._usage_after_finish = False

    @property
    def evidence(self) -> Evidence:
        raw = self._raw_usage
        if raw is not None and raw is not self._parsed_usage:
            self._parsed_usage = raw
            parsed = Usage.from_openai(raw)
            if parsed is not None:
                self._evidence.usage = parsed
        return self._evidence

    def buffered(self) -> int:
        """Events already read from the upstream: the relay sends them to the client in one write."""
        return len(self._buffered) + len(self._pending)

    async def prime(self) -> None:
        """Read up to the first event so that failures before any byte reach the client can
        still fall back to another route."""
        try:
            first = await self._next_event(first=True)
        except BaseException:
            await self.aclose()
            raise
        if first is not None:
            self._pending.append(first)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        try:
            while self._pending:
                yield self._pending.popleft()
            while (chunk := await self._next_event()) is not None:
                yield chunk
        finally:
            await self.aclose()

    async def _next_event(self, first: bool = False) -> dict[str, Any] | None:
        while True:
            if self._finished:
                return None
            payload = self._take_payload()
            if payload is not None:
                if payload == DONE:
                    self._finished = True
                    return None
                return self._chunk(payload)
            raw = await self._read(first)
            if raw is None:
                leftover = self._parser.close()
                if leftover is not None and leftover.strip() == DONE:
                    self._finished = True
                    return None
                if leftover is not None and leftover.strip():
                    chunk = self._chunk(leftover)  # a last event whose blank line never came
                    if self._complete_without_done():
                        self._finished = True
                    return chunk
                if self._complete_without_done():
                    self._finished = True
                    return None
                raise UpstreamError(ErrorKind.PROTOCOL, "stream ended before [DONE]", evidence=self.evidence)
            self._buffered.extend(self._parser.feed(raw))

    def _take_payload(self) -> bytes | None:
        return self._buffered.popleft() if self._buffered else None

    async def _read(self, first: bool) -> bytes | None:
        remaining = self._deadline - time.monotonic()
        limit = min(remaining, self._first_byte) if first else remaining
        if limit <= 0:
            raise UpstreamError(ErrorKind.TIMEOUT, "stream exceeded the total time limit", evidence=self.evidence)
        try:
            async with asyncio.timeout(limit):
                data = await self._response.content.readany()
        except aiohttp.SocketTimeoutError:
            # The per-read limit: the stream stalled between chunks.
            raise UpstreamError(ErrorKind.TIMEOUT, "stream stalled between chunks", evidence=self.evidence) from None
        except TimeoutError:
            what = "no first chunk" if first else "stream exceeded the total time limit"
            raise UpstreamError(ErrorKind.TIMEOUT, what, evidence=self.evidence) from None
        except (aiohttp.ClientError, OSError) as exc:
            if self._complete_without_done():
                return None  # cut after the answer's end and its usage: nothing of it was lost
            raise UpstreamError(
                ErrorKind.PROTOCOL, f"stream broken: {type(exc).__name__}", evidence=self.evidence
            ) from None
        return data or None  # b"" is the end of the body

    def _chunk(self, payload: bytes) -> dict[str, Any]:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(ErrorKind.PROTOCOL, "malformed stream chunk", evidence=self.evidence) from None
        if not isinstance(chunk, dict):
            raise UpstreamError(ErrorKind.PROTOCOL, "stream chunk is not an object", evidence=self.evidence)
        if "error" in chunk and "choices" not in chunk:
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            raise UpstreamError(ErrorKind.STREAM_ERROR, str(message or "error event in stream"), evidence=self.evidence)
        usage = chunk.get("usage")
        if usage and isinstance(usage, dict):
            self._raw_usage = usage
            self._usage_after_finish = self._evidence.finish_reason is not None
        choices = chunk.get("choices")
        if choices:
            reason = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
            if reason:
                self._evidence.finish_reason = reason
                # The finish chunk itself carries the cumulative usage in Baseten's streams.
                self._usage_after_finish = bool(usage and isinstance(usage, dict))
        return chunk

    def _complete_without_done(self) -> bool:
        """The answer ended (a finish reason) and its final usage arrived with or after it."""
        return self._evidence.finish_reason is not None and self._usage_after_finish

    async def aclose(self) -> None:
        done, self._finished = self._finished, True
        if done:
            self._response.release()  # back to the pool, if aiohttp saw the body end
        else:
            self._response.close()  # cut short: the connection cannot carry another request
