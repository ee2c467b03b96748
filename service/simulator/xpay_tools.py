"""The xpay stand-in's tools and state: the four meta-tools with xpay's documented names and
arguments (xpay_discover, xpay_details, xpay_run, xpay_balance), a prepaid balance with a spending
limit, $0.01 taken per successful run, and the receipt `Cost: $0.01 | Balance: $X | xpay✦`.
xpay_run answers from the Baseten stand-in, in-process. The HTTP layer around them is xpay.py.
"""


from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.session import ServerSession
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.types import CallToolResult, TextContent
from starlette.requests import Request

from service.simulator.control import ControlAnswer, RequestLog
from service.simulator.faults import FaultBook
from service.simulator.marketplace import (
    UpstreamBaseten,
    apply_knobs,
    decode_json,
    format_usd,
)
from service.upstreams.ratelimit import ClientRateLimiter

# What FastMCP injects into a tool; module-level so FastMCP resolves the annotation by name.
ToolContext = Context[ServerSession, object, Request]

TOOL = "baseten_chat_completions"
PROVIDER = "baseten"
# xpay's HTTP code table (API overview page).
CODE_STATUS = {
    "UNAUTHORIZED": 401,
    "INSUFFICIENT_BALANCE": 402,
    "SPENDING_LIMIT_EXCEEDED": 403,
    "RATE_LIMITED": 429,
    "UPSTREAM_ERROR": 500,
    "UPSTREAM_UNAVAILABLE": 502,
}
STATUS_CODE = {status: code for code, status in CODE_STATUS.items()}
CHOICES = {
    "error_mode": ("result", "jsonrpc", "http"),
    "messages_type": ("array", "string"),
    "stream_input": ("buffer", "sse_text"),
    "tool_names": ("bare", "prefixed", "both"),
    "balance_format": ("text", "json"),
}
# Request fields a client may send JSON-encoded when the schema types them as strings.
_JSON_FIELDS = ("messages", "tools", "stop", "tool_choice", "response_format", "stream_options", "chat_template_args")
# Keys in the ASGI scope: set by the HTTP layer for the tool, or by the tool for the HTTP layer.
_FAULT = "xpay.fault"
_LIMITED = "xpay.rate_limited"
_UPSTREAM_FAULT = "xpay.upstream_fault"


@dataclass
class XpayConfig:
    api_key: str = "fake-xpay-key"
    price: Decimal = Decimal("0.01")
    spending_limit: Decimal | None = None  # total this key may spend; None: no limit
    rpm: int = 60
    concurrency: int = 10
    error_mode: str = "result"
    messages_type: str = "array"  # how xpay_details types messages, tools and stop
    receipt_as_separate_block: bool = False
    structured_content: bool = False
    stream_input: str = "buffer"  # sse_text: a run with stream:true answers the SSE transcript
    tool_names: str = "both"  # which of `baseten_chat_completions` / `baseten/...` xpay accepts
    balance_format: str = "text"
    latency_ms: int = 0
    json_response: bool = True
    stateless_http: bool = False
    log_requests: bool = True


@dataclass
class XpayState:
    config: XpayConfig = field(default_factory=XpayConfig)
    balance: Decimal = Decimal("5.00")
    upstream_url: str | None = None  # a running Baseten stand-in; None: the in-process one
    upstream_api_key: str | None = None
    log_limit: int = 1000

    def __post_init__(self) -> None:
        self._initial = (replace(self.config), self.balance)
        self.spent = Decimal(0)
        self.log = RequestLog(self.log_limit, self.config.log_requests)
        self.faults = FaultBook()
        self.upstream = UpstreamBaseten(self.upstream_url, self.upstream_api_key)
        self.limiter = ClientRateLimiter(self.config.rpm or None, self.config.concurrency or None, margin=0.0)
        self.seen_sessions: set[str] = set()
        self.expired_sessions: set[str] = set()
        self.session_manager: StreamableHTTPSessionManager | None = None

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self.config.api_key = value
        self._initial[0].api_key = value  # a key set after start survives a reset

    def reset(self) -> None:
        self.config = replace(self._initial[0])
        self.balance = self._initial[1]
        self.spent = Decimal(0)
        self.log.clear()
        self.faults.clear()
        self.upstream.reset()
        self.expired_sessions.update(self.seen_sessions)
        self._sync()

    def configure(self, changes: dict[str, Any]) -> None:
        apply_knobs(self.config, changes, CHOICES)
        self._sync()

    def _sync(self) -> None:
        self.log.enabled = self.config.log_requests
        self.limiter = ClientRateLimiter(self.config.rpm or None, self.config.concurrency or None, margin=0.0)
        if self.session_manager is not None:
            # The SDK's session manager reads these per request, so they can change at run time.
            self.session_manager.json_response = self.config.json_response
            self.session_manager.stateless = self.config.stateless_http

    def set_balance(self, payload: dict[str, Any]) -> None:
        holder = _Money(self.balance, self.config.spending_limit, self.spent)
        apply_knobs(holder, payload, {})
        self.balance, self.config.spending_limit, self.spent = holder.balance, holder.spending_limit, holder.spent

    def balance_view(self) -> dict[str, Any]:
        limit = self.config.spending_limit
        return {
            "balance": str(self.balance),
            "spent": str(self.spent),
            "spending_limit": str(limit) if limit is not None else None,
        }

    def extra_control(self, action: str, method: str, payload: object) -> ControlAnswer | None:
        if action == "expire_sessions" and method == "POST":
            fresh = self.seen_sessions - self.expired_sessions
            self.expired_sessions.update(fresh)
            return 200, {"expired": len(fresh)}
        return None

    def accepts_tool(self, name: str) -> bool:
        style = self.config.tool_names
        return (name == TOOL and style != "prefixed") or (name == f"{PROVIDER}/{TOOL}" and style != "bare")


@dataclass
class _Money:
    balance: Decimal
    spending_limit: Decimal | None
    spent: Decimal


def input_schema(messages_type: str) -> dict[str, Any]:
    """baseten_chat_completions' inputSchema, with the fields the xpay tool page lists."""
    listish: dict[str, Any] = {"type": "string"} if messages_type == "string" else {"type": "array"}
    flexible: dict[str, Any] = {"type": "string"} if messages_type == "string" else {"type": ["string", "array"]}
    choice: dict[str, Any] = {"type": "string"} if messages_type == "string" else {"type": ["string", "object"]}
    number, boolean, obj = {"type": "number"}, {"type": "boolean"}, {"type": "object"}
    properties = {
        "model": {"type": "string", "description": "Model slug (e.g., deepseek-ai/DeepSeek-V3.1)"},
        "messages": {**listish, "description": "Conversation messages with role and content"},
        "tools": {**listish, "description": "Functions model can call"},
        "stop": {**flexible, "description": "Stop sequences"},
        "tool_choice": {**choice, "description": "Tool calling mode"},
        "response_format": {**obj, "description": "Response format type"},
        "reasoning_effort": {"type": "string", "description": "Reasoning depth (low/medium/high)"},
        "chat_template_args": {**obj, "description": "Chat template arguments"},
        "stream": {**boolean, "description": "Stream responses"},
        "stream_options": {**obj, "description": "Stream options"},
        "max_tokens": {**number, "description": "Max tokens (default: 4096)"},
        "temperature": {**number, "description": "Sampling temperature 0-4"},
        "top_p": number,
        "top_k": number,
        "min_p": number,
        "seed": number,
        "n": number,
        "logprobs": boolean,
        "top_logprobs": number,
        "frequency_penalty": number,
        "presence_penalty": number,
        "repetition_penalty": number,
        "parallel_tool_calls": boolean,
        "user": {"type": "string"},
    }
    return {"type": "object", "properties": properties, "required": ["model", "messages"]}


def _scope(ctx: ToolContext) -> dict[str, Any]:
    try:
        request = ctx.request_context.request
    except (ValueError, LookupError, AttributeError):
        return {}
    return getattr(request, "scope", None) or {}


def _text(text: str, *, error: bool = False) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], isError=error)


def _fault(scope: dict[str, Any], code: str, message: str) -> CallToolResult:
    scope[_FAULT] = (code, message)
    return _text(f"{code}: {message}", error=True)


def _rate_fault(state: XpayState, scope: dict[str, Any]) -> CallToolResult | None:
    retry = scope.get(_LIMITED)
    if retry is None:
        return None
    limits = f"{state.config.rpm} requests per minute and {state.config.concurrency} concurrent per key"
    return _fault(scope, "RATE_LIMITED", f"Rate limit exceeded ({limits}). Retry after {retry}s")


def _decode_fields(arguments: dict[str, Any]) -> dict[str, Any]:
    body = dict(arguments)
    for key in _JSON_FIELDS:
        value = body.get(key)
        if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):  # left as is: the upstream rejects it in its own words
                body[key] = json.loads(value)
    return body


def _register_tools(mcp: FastMCP, state: XpayState) -> None:
    @mcp.tool(description="Search xpay's tool catalog by keyword.")
    async def xpay_discover(query: str, ctx: ToolContext) -> CallToolResult:
        scope = _scope(ctx)
        if limited := _rate_fault(state, scope):
            return limited
        words = [w for w in query.lower().split() if w]
        haystack = f"{TOOL} {PROVIDER} baseten model apis chat completions llm openai".lower()
        found = not words or any(w in haystack for w in words)
        lines = [f'Found {1 if found else 0} tools matching "{query}":']
        if found:
            lines.append(f"1. {TOOL} (Baseten Model APIs) — ${format_usd(state.config.price)}/call")
        return _text("\n".join(lines))

    @mcp.tool(description="Get a tool's full input schema, description and pricing. Tool name or server slug.")
    async def xpay_details(tool: str, ctx: ToolContext) -> CallToolResult:
        scope = _scope(ctx)
        if limited := _rate_fault(state, scope):
            return limited
        if not state.accepts_tool(tool) and tool != PROVIDER:
            return _text(f"Tool not found: {tool}", error=True)
        details = {
            "name": TOOL,
            "provider": PROVIDER,
            "description": "Create a chat completion using OpenAI-compatible API.",
            "price": f"${format_usd(state.config.price)}",
            "pricing_model": "flat",
            "inputSchema": input_schema(state.config.messages_type),
        }
        return _text(json.dumps(details, ensure_ascii=False))

    @mcp.tool(description="Run a tool: its output followed by a billing receipt.")
    async def xpay_run(tool: str, input: dict[str, Any], ctx: ToolContext) -> CallToolResult:
        scope = _scope(ctx)
        if limited := _rate_fault(state, scope):
            return limited
        if not state.accepts_tool(tool):
            return _text(f"Tool not found: {tool}", error=True)
        config = state.config
        price = config.price
        if state.balance < price:
            message = f"Balance ${format_usd(state.balance)} is below the ${format_usd(price)} call price"
            return _fault(scope, "INSUFFICIENT_BALANCE", message)
        if config.spending_limit is not None and state.spent + price > config.spending_limit:
            message = f"Spending limit ${format_usd(config.spending_limit)} reached"
            return _fault(scope, "SPENDING_LIMIT_EXCEEDED", message)
        # Taken before the upstream call so concurrent calls cannot overdraw; refunded if it fails.
        state.balance -= price
        state.spent += price
        body = _decode_fields(input)
        sse = config.stream_input == "sse_text" and body.get("stream") is True
        if not sse:
            body.pop("stream_options", None)
            body["stream"] = False
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        answer = await state.upstream.chat(body, scope.get(_UPSTREAM_FAULT))
        if answer.status >= 400:
            state.balance += price
            state.spent -= price
            code = "UPSTREAM_UNAVAILABLE" if answer.status in (502, 503, 504) else "UPSTREAM_ERROR"
            return _fault(scope, code, answer.body.decode("utf-8", "replace").strip())
        output = answer.body.decode("utf-8", "replace").strip()
        receipt = f"Cost: ${format_usd(price)} | Balance: ${format_usd(state.balance)} | xpay✦"
        blocks = [output, receipt] if config.receipt_as_separate_block else [f"{output}\n\n{receipt}"]
        structured = decode_json(answer.body) if config.structured_content and not sse else None
        return CallToolResult(
            content=[TextContent(type="text", text=text) for text in blocks],
            structuredContent=structured if isinstance(structured, dict) else None,
            isError=False,
        )

    @mcp.tool(description="Current balance and credit information.")
    async def xpay_balance(ctx: ToolContext) -> CallToolResult:
        scope = _scope(ctx)
        if limited := _rate_fault(state, scope):
            return limited
        if state.config.balance_format == "json":
            return _text(json.dumps({"balance": format_usd(state.balance), "currency": "USD"}))
        return _text(f"Balance: ${format_usd(state.balance)}")
