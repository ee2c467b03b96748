"""A small MCP streamable-HTTP client: JSON-RPC over POST, answers read as JSON or as SSE.

Why not the SDK's client: it turns an HTTP error status into an ExceptionGroup that tears the whole
session down, and runs a background task group per connection. Here every failure is a typed
exception the adapter can map, one session is shared by all callers, and an expired session is
re-opened transparently.

The server URL may carry the API key (`?key=`): it is never put in an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import msgspec

from service.chat.sse import SSEParser

PROTOCOL_VERSION = "2025-06-18"
KNOWN_PROTOCOL_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
_ACCEPT = "application/json, text/event-stream"
_SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "token", "access_token"})
_ERROR_BODY_LIMIT = 64 * 1024


def redact_url(url: str) -> str:
    """The URL with secret query values (key, token, ...) replaced by `***`."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


class McpError(Exception):
    """Base class: any failure talking to the MCP server."""


class McpHttpError(McpError):
    """The server answered a non-2xx HTTP status."""

    def __init__(self, status: int, body: str, headers: httpx.Headers) -> None:
        super().__init__(f"MCP server answered HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class McpRpcError(McpError):
    """The server answered with a JSON-RPC `error` object."""

    def __init__(self, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(f"MCP error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class McpTimeoutError(McpError):
    pass


class McpConnectError(McpError):
    pass


class McpProtocolError(McpError):
    """An answer that is not valid MCP (bad JSON, missing response, cut connection)."""


class _SessionLost(Exception):
    """The server no longer knows our session (404) or wants one we do not have (400)."""


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class McpClient:
    """One logical MCP session over a caller-owned `httpx.AsyncClient`, safe for concurrent callers."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        client_name: str = "switchyard",
        client_version: str = "1.0",
        protocol_version: str = PROTOCOL_VERSION,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_body_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._http = http
        self._url = url
        self._client_info = {"name": client_name, "version": client_version}
        self._wanted_protocol = protocol_version
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_body = max_body_bytes
        self._ids = itertools.count(1)
        self._init_lock = asyncio.Lock()
        self._initialized = False
        self._generation = 0
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.server_info: dict[str, Any] | None = None

    @property
    def redacted_url(self) -> str:
        return redact_url(self._url)

    @property
    def generation(self) -> int:
        """How many sessions have been opened so far (1 after the first initialize)."""
        return self._generation

    async def call_tool(
        self, name: str, arguments: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """`tools/call`: the raw result object (content, isError, structuredContent...)."""
        return await self.request("tools/call", {"name": name, "arguments": arguments}, timeout=timeout)

    async def list_tools(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            result = await self.request("tools/list", params, timeout=timeout)
            tools.extend(t for t in result.get("tools") or [] if isinstance(t, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                return tools
            params = {"cursor": cursor}

    async def request(self, method: str, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send one JSON-RPC request (opening the session first if needed) and return its `result`.

        An expired session is re-opened once and the request retried. The whole exchange, including
        any initialize, is bounded by `timeout`.
        """
        budget = timeout if timeout is not None else self._timeout
        try:
            async with asyncio.timeout(budget):
                generation = await self._ensure_session(budget)
                try:
                    return await self._rpc(method, params, budget)
                except _SessionLost:
                    await self._reopen(generation, budget)
                try:
                    return await self._rpc(method, params, budget)
                except _SessionLost:
                    raise McpProtocolError("MCP session lost again right after re-initializing") from None
        except TimeoutError:
            raise McpTimeoutError(f"MCP {method} timed out after {budget:g}s") from None

    async def aclose(self) -> None:
        """End the session politely (DELETE); failures are ignored, the session is forgotten anyway."""
        session_id, self.session_id = self.session_id, None
        self._initialized = False
        if session_id is None:
            return
        with contextlib.suppress(httpx.HTTPError):
            await self._http.delete(self._url, headers=self._headers(session_id), timeout=self._connect_timeout)

    async def _ensure_session(self, timeout: float) -> int:
        if self._initialized:
            return self._generation
        async with self._init_lock:
            if not self._initialized:
                await self._initialize(timeout)
            return self._generation

    async def _reopen(self, seen_generation: int, timeout: float) -> None:
        """Re-initialize, unless a concurrent caller already did since `seen_generation`."""
        async with self._init_lock:
            if self._initialized and self._generation != seen_generation:
                return
            self._initialized = False
            self.session_id = None
            await self._initialize(timeout)

    async def _initialize(self, timeout: float) -> None:
        self.session_id = None
        self.protocol_version = None
        request_id = next(self._ids)
        payload = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "initialize",
            "params": {"protocolVersion": self._wanted_protocol, "capabilities": {}, "clientInfo": self._client_info},
        }
        try:
            message, headers = await self._post(payload, request_id, timeout, initializing=True)
        except _SessionLost:
            raise McpProtocolError("MCP initialize was refused for a session reason") from None
        result = _result_of(message)
        version = result.get("protocolVersion")
        if not isinstance(version, str) or version not in KNOWN_PROTOCOL_VERSIONS:
            raise McpProtocolError(f"MCP server offered an unsupported protocol version {version!r}")
        self.protocol_version = version
        self.server_info = result.get("serverInfo") if isinstance(result.get("serverInfo"), dict) else None
        self.session_id = headers.get("mcp-session-id")
        try:
            await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, None, timeout)
        except _SessionLost:
            raise McpProtocolError("MCP server rejected the session it just issued") from None
        self._initialized = True
        self._generation += 1

    async def _rpc(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        request_id = next(self._ids)
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        message, _ = await self._post(payload, request_id, timeout)
        return _result_of(message)

    def _headers(self, session_id: str | None, *, initializing: bool = False) -> dict[str, str]:
        headers = {"Accept": _ACCEPT, "Content-Type": "application/json"}
        if session_id:
            headers["Mcp-Session-Id"] = session_id
        if self.protocol_version and not initializing:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    async def _post(
        self, payload: dict[str, Any], request_id: int | None, timeout: float, *, initializing: bool = False
    ) -> tuple[dict[str, Any] | None, httpx.Headers]:
        sent_session = self.session_id
        http_timeout = httpx.Timeout(timeout, connect=min(self._connect_timeout, timeout))
        try:
            async with self._http.stream(
                "POST",
                self._url,
                content=msgspec.json.encode(payload),
                headers=self._headers(sent_session, initializing=initializing),
                timeout=http_timeout,
            ) as response:
                status = response.status_code
                if status >= 300:
                    body = await _read_limited(response, _ERROR_BODY_LIMIT, truncate=True)
                    text = body.decode("utf-8", "replace")
                    if sent_session is not None and status == 404:
                        raise _SessionLost
                    if status == 400 and "session" in text.lower():
                        raise _SessionLost
                    raise McpHttpError(status, text, response.headers)
                if request_id is None:
                    await _read_limited(response, _ERROR_BODY_LIMIT, truncate=True)
                    return None, response.headers
                content_type = response.headers.get("content-type", "").lower()
                if content_type.startswith("text/event-stream"):
                    return await self._from_sse(response, request_id), response.headers
                body = await _read_limited(response, self._max_body)
                return _pick_response(_loads(body), request_id), response.headers
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise McpConnectError("could not connect to the MCP server") from None
        except httpx.TimeoutException:
            raise McpTimeoutError("MCP server did not answer in time") from None
        except httpx.TransportError as exc:
            message = f"connection to the MCP server failed mid-exchange ({type(exc).__name__})"
            raise McpProtocolError(message) from None

    async def _from_sse(self, response: httpx.Response, request_id: int) -> dict[str, Any]:
        parser = SSEParser()
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self._max_body:
                raise McpProtocolError("MCP event stream exceeded the size limit")
            for data in parser.feed(chunk):
                found = _match_event(data, request_id)
                if found is not None:
                    return found
        leftover = parser.close()
        if leftover is not None:
            found = _match_event(leftover, request_id)
            if found is not None:
                return found
        raise McpProtocolError("MCP event stream ended without a response")


def _match_event(data: bytes, request_id: int) -> dict[str, Any] | None:
    if not data.strip():
        return None  # priming events carry an id and no data
    try:
        return _pick_response(_loads(data), request_id)
    except McpProtocolError:
        return None  # a notification or a request from the server: not our answer


def _loads(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise McpProtocolError("MCP server sent a body that is not JSON") from None


def _pick_response(message: Any, request_id: int) -> dict[str, Any]:
    candidates = message if isinstance(message, list) else [message]
    for item in candidates:
        if not isinstance(item, dict) or ("result" not in item and "error" not in item):
            continue
        # A JSON-RPC error about an unparseable request may come back with a null id.
        if item.get("id") == request_id or (item.get("id") is None and "error" in item):
            return item
    raise McpProtocolError("MCP answer does not contain the response to our request")


def _result_of(message: dict[str, Any] | None) -> dict[str, Any]:
    if message is None:
        raise McpProtocolError("MCP server sent no response")
    error = message.get("error")
    if error is not None:
        if isinstance(error, dict):
            code = error.get("code") if isinstance(error.get("code"), int) else None
            raise McpRpcError(code, str(error.get("message") or ""), error.get("data"))
        raise McpRpcError(None, str(error))
    result = message.get("result")
    if not isinstance(result, dict):
        raise McpProtocolError("MCP response has no result object")
    return result


async def _read_limited(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if truncate:
                parts.append(chunk[: max(0, limit - (size - len(chunk)))])
                break
            raise McpProtocolError("MCP response exceeded the size limit")
        parts.append(chunk)
    return b"".join(parts)
