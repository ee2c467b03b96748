"""The xpay front end: Baseten's chat completions behind xpay's MCP meta-tools, $0.01 flat per call.

One call is `tools/call xpay_run {"tool": "baseten_chat_completions", "input": {...}}`. The answer is
the upstream JSON as text followed by a receipt (`Cost: $0.01 | Balance: $4.99 | xpay✦`). xpay's
error placement is undocumented, so a tool result with isError, a JSON-RPC error and an HTTP status
are all mapped into the same taxonomy. xpay cannot stream: streams are replayed from the full answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from service.catalog.model import Route
from service.errors import ErrorKind, UpstreamError
from service.settings import Settings, Timeouts
from service.upstreams.base import Completion, Evidence, Usage
from service.upstreams.baseten import GATEWAY_ONLY_FIELDS
from service.upstreams.mcp_client import (
    McpClient,
    McpConnectError,
    McpError,
    McpHttpError,
    McpProtocolError,
    McpRpcError,
    McpTimeoutError,
)
from service.upstreams.ratelimit import ClientRateLimiter, Permit
from service.upstreams.synth import ListChunkStream, chunks_from_completion
from service.upstreams.xpay_parse import (
    ToolSchema,
    error_from_text,
    first_json_object,
    parse_balance_text,
    parse_tool_schema,
    split_receipt,
    tool_texts,
)

TOOL = "baseten_chat_completions"
PROVIDER_PREFIX = "baseten/"
# Request fields that make no sense through a buffered MCP call, and the gateway's own extensions.
_DROPPED = ("stream", "stream_options", *GATEWAY_ONLY_FIELDS)
_FALLBACK_SCHEMA_TTL = 300.0


@dataclass(frozen=True, slots=True)
class _Resolved:
    tool: str
    schema: ToolSchema
    expires: float


@dataclass(slots=True)
class _Channel:
    """One xpay API key: its MCP session, its own call limits, its own prepaid balance."""

    mcp: McpClient
    limiter: ClientRateLimiter
    balance: Decimal | None = None


class XpayAdapter:
    """xpay behind one key or a pool of keys (XPAY_API_KEYS): the capacity board decides which key
    a call's slot came from, and the call goes out on that key."""

    front_end = "xpay"

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        api_key: str,
        *,
        rpm: int | None = 60,
        concurrency: int | None = 10,
        timeouts: Timeouts = Timeouts(),
        tool: str = TOOL,
        schema_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        more_keys: tuple[tuple[str, int | None, int | None], ...] = (),
    ) -> None:
        self._timeouts = timeouts
        self._channels = [
            _Channel(McpClient(http, _with_key(url, key), timeout=timeouts.total, connect_timeout=timeouts.connect),
                     ClientRateLimiter(key_rpm, key_concurrency, clock=clock))
            for key, key_rpm, key_concurrency in ((api_key, rpm, concurrency), *more_keys)
        ]
        self.limiter = self._channels[0].limiter
        self._tool = tool
        self._schema_ttl = schema_ttl
        self._clock = clock
        self._resolved: _Resolved | None = None
        # Concurrent first calls ask once: each asking takes a permit of the first key, and a call
        # holding that key's only slot would otherwise see its own pool refuse it (429).
        self._resolving = asyncio.Lock()

    @classmethod
    def from_settings(cls, http: httpx.AsyncClient, settings: Settings) -> XpayAdapter:
        keys = settings.xpay_keys()
        if not keys:
            raise ValueError("XPAY_API_KEY (or XPAY_API_KEYS) is not set")
        first, *rest = keys
        return cls(
            http,
            settings.xpay_mcp_url,
            first.key,
            rpm=first.rpm,
            concurrency=first.concurrency,
            timeouts=settings.timeouts,
            more_keys=tuple((k.key, k.rpm, k.concurrency) for k in rest),
        )

    @property
    def balance(self) -> Decimal | None:
        """The prepaid balance across the keys, from their latest receipts or checks; None before any."""
        known = [c.balance for c in self._channels if c.balance is not None]
        return sum(known, Decimal(0)) if known else None

    @property
    def mcp(self) -> McpClient:
        return self._channels[0].mcp

    async def complete(self, route: Route, body: dict[str, Any], *, key: int = 0) -> Completion:
        channel = self._channels[key % len(self._channels)]
        resolved = await self._resolve()
        arguments = {"tool": resolved.tool, "input": encode_input(route, body, resolved.schema)}
        result = await self._call(channel, "xpay_run", arguments, self._timeouts.total)
        texts = tool_texts(result)
        joined, receipt = split_receipt("\n".join(texts))
        if receipt is not None:
            channel.balance = receipt.balance
        if result.get("isError"):
            error = error_from_text(joined)
            if error.kind is ErrorKind.PROTOCOL and "not found" in error.message.lower():
                self._resolved = None  # the tool moved: look it up again next time
            if receipt is not None:
                # A failed call may still be charged: its receipt is the evidence.
                error.evidence.receipt_usd = receipt.cost
                error.evidence.balance_usd = receipt.balance
            raise error
        upstream = first_json_object(joined)
        if upstream is None:
            upstream = _structured_body(result.get("structuredContent"))
        if upstream is None:
            raise UpstreamError(ErrorKind.PROTOCOL, "xpay answer holds no JSON completion")
        if not isinstance(upstream.get("choices"), list):
            if "error" in upstream:
                raise error_from_text("UPSTREAM_ERROR: " + json.dumps(upstream))
            raise UpstreamError(ErrorKind.PROTOCOL, "xpay answer is not a chat completion")
        choices = upstream["choices"]
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        evidence = Evidence(
            usage=Usage.from_openai(upstream.get("usage")),
            receipt_usd=receipt.cost if receipt is not None else None,
            balance_usd=receipt.balance if receipt is not None else None,
            upstream_request_id=upstream.get("id") if isinstance(upstream.get("id"), str) else None,
            finish_reason=first.get("finish_reason"),
        )
        return Completion(body=upstream, evidence=evidence)

    async def stream(self, route: Route, body: dict[str, Any], *, key: int = 0) -> ListChunkStream:
        completion = await self.complete(route, body, key=key)
        return ListChunkStream(chunks_from_completion(completion.body), completion.evidence)

    async def fetch_balance(self) -> Decimal | None:
        """Ask xpay_balance on every key; the sum of what is known (a key that cannot be read keeps
        its last known balance)."""
        for channel in self._channels:
            try:
                result = await self._call(channel, "xpay_balance", {}, self._timeouts.first_byte)
            except UpstreamError:
                continue
            text, receipt = split_receipt("\n".join(tool_texts(result)))
            balance = parse_balance_text(text)
            if balance is None and receipt is not None:
                balance = receipt.balance
            if balance is not None and not result.get("isError"):
                channel.balance = balance
        return self.balance

    async def aclose(self) -> None:
        for channel in self._channels:
            await channel.mcp.aclose()

    async def _resolve(self) -> _Resolved:
        """The tool name xpay accepts and its input schema, asked once and cached.

        The docs use the bare name, the tool page the `baseten/` form: whichever xpay_details knows
        is used. An unreadable schema means sending native JSON types, re-asked after a while.
        """
        if self._resolved is not None and self._resolved.expires > self._clock():
            return self._resolved
        async with self._resolving:
            return await self._resolve_now()

    async def _resolve_now(self) -> _Resolved:
        now = self._clock()
        if self._resolved is not None and self._resolved.expires > now:
            return self._resolved  # asked while this caller waited
        bare = self._tool.removeprefix(PROVIDER_PREFIX)
        candidates = [self._tool, bare if self._tool.startswith(PROVIDER_PREFIX) else PROVIDER_PREFIX + bare]
        for name in candidates:
            # The tool and its schema are xpay's, not a key's: the first key asks.
            result = await self._call(self._channels[0], "xpay_details", {"tool": name}, self._timeouts.first_byte)
            text, _ = split_receipt("\n".join(tool_texts(result)))
            if result.get("isError"):
                error = error_from_text(text)
                if "not found" in error.message.lower() or "unknown tool" in error.message.lower():
                    continue
                raise error
            schema = parse_tool_schema(text, result.get("structuredContent"))
            if schema is None:
                self._resolved = _Resolved(name, ToolSchema({}), now + _FALLBACK_SCHEMA_TTL)
            else:
                self._resolved = _Resolved(name, schema, now + self._schema_ttl)
            return self._resolved
        raise UpstreamError(ErrorKind.PROTOCOL, f"xpay does not know the tool {self._tool!r}")

    async def _call(self, channel: _Channel, tool: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        permit = self._admit(channel)
        try:
            return await channel.mcp.call_tool(tool, arguments, timeout=timeout)
        except McpError as exc:
            raise map_mcp_error(exc) from None
        finally:
            permit.release()

    @staticmethod
    def _admit(channel: _Channel) -> Permit:
        permit = channel.limiter.try_acquire()
        if permit is None:
            raise UpstreamError(
                ErrorKind.RATE_LIMITED,
                "xpay call limit reached on this gateway (requests per minute or concurrent calls)",
                retry_after=channel.limiter.retry_after(),
            )
        return permit


def encode_input(route: Route, body: dict[str, Any], schema: ToolSchema) -> dict[str, Any]:
    """The `input` of xpay_run: the chat body for `route.model`, never streaming, with each list or
    object field sent as a JSON string wherever the tool's inputSchema types that field a string."""
    payload = {k: v for k, v in body.items() if k not in _DROPPED}
    payload["model"] = route.model
    for key, value in payload.items():
        if isinstance(value, (list, dict)) and schema.wants_string(key):
            payload[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return payload


def map_mcp_error(exc: McpError) -> UpstreamError:
    if isinstance(exc, McpTimeoutError):
        return UpstreamError(ErrorKind.TIMEOUT, str(exc))
    if isinstance(exc, McpConnectError):
        return UpstreamError(ErrorKind.CONNECT, str(exc))
    if isinstance(exc, McpHttpError):
        return _from_http(exc)
    if isinstance(exc, McpRpcError):
        return _from_rpc(exc)
    if isinstance(exc, McpProtocolError):
        return UpstreamError(ErrorKind.PROTOCOL, str(exc))
    return UpstreamError(ErrorKind.PROTOCOL, f"MCP failure: {type(exc).__name__}")


_STATUS_KINDS = {
    401: ErrorKind.OPERATOR_AUTH,
    402: ErrorKind.INSUFFICIENT_BALANCE,
    403: ErrorKind.SPENDING_LIMIT,
    413: ErrorKind.PAYLOAD_TOO_LARGE,
    429: ErrorKind.RATE_LIMITED,
}


def _from_http(exc: McpHttpError) -> UpstreamError:
    body = exc.body.strip()
    parsed = first_json_object(body)
    text = body
    if isinstance(parsed, dict):
        code = parsed.get("error") if isinstance(parsed.get("error"), str) else parsed.get("code")
        message = parsed.get("message") or parsed.get("detail") or ""
        if isinstance(parsed.get("error"), dict):  # a JSON-RPC error object in the HTTP body
            code = parsed["error"].get("message")
            message = json.dumps(parsed["error"].get("data")) if parsed["error"].get("data") is not None else ""
        text = f"{code or ''}: {message}" if code else body
    error = error_from_text(text, default=None)
    if error is None:
        kind = _STATUS_KINDS.get(exc.status)
        if kind is None:
            kind = ErrorKind.UPSTREAM_SERVER if exc.status >= 500 else ErrorKind.PROTOCOL
        error = UpstreamError(kind, f"xpay answered HTTP {exc.status}")
    error.upstream_status = exc.status
    if error.kind is ErrorKind.RATE_LIMITED and error.retry_after is None:
        error.retry_after = exc.retry_after
    return error


def _from_rpc(exc: McpRpcError) -> UpstreamError:
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("message") or data.get("detail"), str):
        data = data.get("message") or data.get("detail")
    data = data if isinstance(data, str) else (json.dumps(data) if data is not None else "")
    text = f"{exc.message}: {data}" if data else exc.message
    error = error_from_text(text, default=None)
    if error is None:
        # -32600..-32602: our request was malformed for this server; anything else is its failure.
        kind = ErrorKind.PROTOCOL if exc.code in (-32600, -32601, -32602, -32700) else ErrorKind.UPSTREAM_SERVER
        error = UpstreamError(kind, f"xpay JSON-RPC error {exc.code}: {exc.message[:200]}")
    error.upstream_code = error.upstream_code or (str(exc.code) if exc.code is not None else None)
    return error


def _structured_body(structured: Any) -> dict[str, Any] | None:
    if not isinstance(structured, dict):
        return None
    if "choices" in structured or "error" in structured:
        return structured
    inner = structured.get("result")
    if isinstance(inner, dict):
        return inner
    if isinstance(inner, str):
        return first_json_object(split_receipt(inner)[0])
    return None


def _with_key(url: str, api_key: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "key"]
    query.append(("key", api_key))
    return urlunsplit(parts._replace(query=urlencode(query)))

