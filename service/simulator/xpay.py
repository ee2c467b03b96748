"""The xpay stand-in: xpay's MCP master server, on the official MCP SDK (FastMCP, streamable HTTP).

Four meta-tools with the documented names and arguments (xpay_discover, xpay_details, xpay_run,
xpay_balance); `?key=` auth; a per-key limit of 60 calls a minute and 10 in flight; a prepaid balance
with a spending limit, $0.01 taken per successful run; the receipt `Cost: $0.01 | Balance: $X | xpay✦`.
Where xpay puts its errors is unknown, so `error_mode` puts them in the tool result (isError), in a
JSON-RPC error, or in the HTTP status. This module is the HTTP layer; the tools and state are
xpay_tools.py. xpay_run answers from the Baseten stand-in, in-process.
"""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qs

from mcp.server.fastmcp import FastMCP
from mcp.server.transport_security import TransportSecuritySettings

from service.asgi import ASGIApp, Message, Receive, Scope, Send
from service.simulator.marketplace import (
    decode_json,
    delay_or_hang,
    handle_market_control,
    read_body,
    scope_headers,
    send_json,
)
from service.simulator.xpay_tools import (  # noqa: F401  (re-exported: the stand-in's public names)
    _FAULT,
    _LIMITED,
    _UPSTREAM_FAULT,
    CODE_STATUS,
    STATUS_CODE,
    XpayConfig,
    XpayState,
    _register_tools,
    input_schema,
)


def create_app(state: XpayState | None = None) -> ASGIApp:
    """The xpay stand-in as an ASGI app: MCP at /mcp?key=..., control at /__control/..."""
    state = state or XpayState()
    mcp = FastMCP(
        "xpay✦",
        instructions="xpay✦ master server: discover, inspect and run paid tools.",
        json_response=state.config.json_response,
        stateless_http=state.config.stateless_http,
        log_level="WARNING",
        # Clients reach the stand-in by whatever host name the test or demo uses.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    _register_tools(mcp, state)
    inner = mcp.streamable_http_app()
    state.session_manager = mcp.session_manager

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/__control/"):
            raw = await read_body(receive) or b""
            status, payload = handle_market_control(state, scope["method"], path, raw)
            await send_json(send, status, payload)
            return
        if path.rstrip("/") != "/mcp":
            await send_json(send, 404, {"error": "NOT_FOUND"})
            return
        await _mcp_request(state, inner, scope, receive, send)

    return app


async def _mcp_request(state: XpayState, inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    method = scope["method"]
    raw = b""
    if method == "POST":
        body = await read_body(receive)
        if body is None:
            return
        raw = body
    headers = scope_headers(scope)
    message = decode_json(raw)
    query = scope.get("query_string", b"").decode("latin-1")
    logged = message if message is not None else raw.decode("utf-8", "replace")
    state.log.record(method, scope["path"], query, headers, logged)
    if parse_qs(query).get("key", [None])[0] != state.config.api_key:
        await send_json(send, 401, {"error": "UNAUTHORIZED", "message": "Invalid or missing API key"})
        return
    session = headers.get("mcp-session-id")
    if session is not None and session in state.expired_sessions:
        # What the SDK answers for a session it no longer knows.
        error = {"jsonrpc": "2.0", "id": "server-error", "error": {"code": -32600, "message": "Session not found"}}
        await send_json(send, 404, error)
        return
    replay = _replay(raw, receive)
    tracking = _tracking_send(state, send)
    call = isinstance(message, dict) and message.get("method") == "tools/call" and method == "POST"
    if not call:
        await inner(scope, replay, tracking)
        return
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    fault = state.faults.take(scope["path"], None, params.get("name"))
    if fault is not None:
        if await delay_or_hang(fault, receive):
            return
        if fault.status is not None:
            code = STATUS_CODE.get(fault.status, "ERROR")
            extra = [(b"retry-after", fault.retry_after.encode())] if fault.retry_after else []
            await send_json(send, fault.status, {"error": code, "message": f"injected fault {fault.status}"}, extra)
            return
    permit = state.limiter.try_acquire()
    if permit is None:
        retry = max(1, math.ceil(state.limiter.retry_after()))
        if state.config.error_mode == "http":
            refusal = {"error": "RATE_LIMITED", "message": "Rate limit exceeded"}
            await send_json(send, 429, refusal, _limit_headers(state, retry))
            return
        scope[_LIMITED] = retry
    scope[_UPSTREAM_FAULT] = headers.get("x-fake-fault")
    try:
        if state.config.error_mode == "result":
            await inner(scope, replay, tracking)
        else:
            await _rewritten(state, inner, scope, replay, tracking, message.get("id"))
    finally:
        if permit is not None:
            permit.release()


def _limit_headers(state: XpayState, retry: int) -> list[tuple[bytes, bytes]]:
    # xpay says rate-limit headers exist but not their names: these are placeholders.
    return [
        (b"x-ratelimit-limit", str(state.config.rpm).encode()),
        (b"x-ratelimit-remaining", b"0"),
        (b"x-ratelimit-reset", str(retry).encode()),
        (b"retry-after", str(retry).encode()),
    ]


async def _rewritten(
    state: XpayState, inner: ASGIApp, scope: Scope, receive: Receive, send: Send, rpc_id: object
) -> None:
    """Run the call buffered; if the tool failed with an xpay code, answer that failure the way
    `error_mode` says: a JSON-RPC error object, or the HTTP status of xpay's code table."""
    start: Message = {}
    parts: list[bytes] = []

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await inner(scope, receive, capture)
    fault = scope.get(_FAULT)
    if fault is None or start.get("status") != 200:
        await send(start)
        await send({"type": "http.response.body", "body": b"".join(parts)})
        return
    code, text = fault
    if state.config.error_mode == "http":
        extra = _limit_headers(state, scope.get(_LIMITED) or 1) if code == "RATE_LIMITED" else []
        await send_json(send, CODE_STATUS[code], {"error": code, "message": text}, extra)
        return
    error = {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": -32000, "message": code, "data": {"message": text}}}
    encoded = json.dumps(error, ensure_ascii=False).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    content_type = {k.lower(): v for k, v in headers}.get(b"content-type", b"")
    body = b"event: message\ndata: " + encoded + b"\n\n" if content_type.startswith(b"text/event-stream") else encoded
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A receive() that hands the already-read body over again, then defers to the real one."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


def _tracking_send(state: XpayState, send: Send) -> Send:
    async def tracking(message: Message) -> None:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", []):
                if name.lower() == b"mcp-session-id":
                    state.seen_sessions.add(value.decode("latin-1"))
        await send(message)

    return tracking
