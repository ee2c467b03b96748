"""The Orthogonal stand-in: the Run API (`POST /v1/run`) reselling the Baseten stand-in, per-call priced.

Bearer `orth_(live|test)_*` auth; the `{"success","price","data"}` envelope, with knobs for the
documented variants of its price fields; dryRun quotes from the catalog's per-token prices; upstream
errors passed through with their status; prepaid credits and their endpoints. The charge for a call
is its usage x the catalog's per-token prices x a markup, exact.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from service.asgi import ASGIApp, Receive, Scope, Send
from service.simulator.control import ControlAnswer, RequestLog
from service.simulator.engine import FakeModel, prompt_tokens_for
from service.simulator.faults import FaultBook
from service.simulator.marketplace import (
    UpstreamBaseten,
    apply_knobs,
    decode_json,
    delay_or_hang,
    format_usd,
    handle_market_control,
    read_body,
    scope_headers,
    send_json,
)
from service.upstreams.ratelimit import ClientRateLimiter

KEY_PATTERN = re.compile(r"orth_(live|test)_[A-Za-z0-9_\-]+")
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
ENDPOINTS = {CHAT_PATH: "POST", MODELS_PATH: "GET"}
CENTS_PER_USD = {"cents": Decimal(100), "1e-5usd": Decimal(100_000)}
STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_CREDITS",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
}
CHOICES = {
    "price_field_style": ("price_only", "both", "cents_only"),
    "price_cents_unit": ("cents", "1e-5usd"),
    "stream_policy": ("reject", "buffer", "sse_text"),
    "dry_run_style": ("price", "estimated_price", "estimate", "unsupported"),
    "method_policy": ("reject", "autocorrect"),
    "upstream_error_status": ("passthrough", "200"),
    "upstream_error_shape": ("string", "object"),
}
_ALNUM = string.ascii_lowercase + string.digits


@dataclass
class OrthogonalConfig:
    api_key: str | None = None  # None: any well-formed orth_live_/orth_test_ key is accepted
    markup: Decimal = Decimal("1.10")
    price_field_style: str = "both"
    price_cents_unit: str = "1e-5usd"  # docs variant A: "internal units (100,000 = $1)"
    stream_policy: str = "buffer"
    dry_run_style: str = "price"
    method_policy: str = "reject"
    upstream_error_status: str = "passthrough"  # 200: success:false on a 2xx
    upstream_error_shape: str = "string"  # how data.error carries the upstream's error
    bill_test_keys: bool = True  # reportedly orth_test_ keys are not billed; false mimics that
    rpm: int = 0  # 0: no limit
    concurrency: int = 0
    latency_ms: int = 0
    log_requests: bool = True


@dataclass
class OrthogonalState:
    config: OrthogonalConfig = field(default_factory=OrthogonalConfig)
    balance: Decimal = Decimal("5.00")
    upstream_url: str | None = None
    upstream_api_key: str | None = None
    log_limit: int = 1000

    def __post_init__(self) -> None:
        self._initial = (replace(self.config), self.balance)
        self.log = RequestLog(self.log_limit, self.config.log_requests)
        self.faults = FaultBook()
        self.upstream = UpstreamBaseten(self.upstream_url, self.upstream_api_key)
        self.usage: list[dict[str, Any]] = []
        self._sync()

    @property
    def api_key(self) -> str | None:
        return self.config.api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self.config.api_key = value
        self._initial[0].api_key = value  # a key set after start survives a reset

    @property
    def models(self) -> dict[str, FakeModel]:
        return self.upstream.models

    def reset(self) -> None:
        self.config = replace(self._initial[0])
        self.balance = self._initial[1]
        self.log.clear()
        self.faults.clear()
        self.usage.clear()
        self.upstream.reset()
        self._sync()

    def configure(self, changes: dict[str, Any]) -> None:
        apply_knobs(self.config, changes, CHOICES)
        self._sync()

    def _sync(self) -> None:
        self.log.enabled = self.config.log_requests
        self.limiter = ClientRateLimiter(self.config.rpm or None, self.config.concurrency or None, margin=0.0)

    def set_balance(self, payload: dict[str, Any]) -> None:
        holder = _Balance(self.balance)
        apply_knobs(holder, payload, {})
        self.balance = holder.balance

    def balance_view(self) -> dict[str, Any]:
        return {"balance": str(self.balance)}

    def extra_control(self, action: str, method: str, payload: object) -> ControlAnswer | None:
        return None

    def cents(self, amount: Decimal) -> int:
        units = amount * CENTS_PER_USD[self.config.price_cents_unit]
        return int(units.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass
class _Balance:
    balance: Decimal


def token_charge(model: FakeModel, usage: dict[str, Any], markup: Decimal) -> Decimal:
    """Usage x the catalog's per-token prices x markup, exact."""
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = min(prompt, int(details.get("cached_tokens") or 0)) if isinstance(details, dict) else 0
    pricing = model.pricing
    prompt_price = Decimal(pricing.get("prompt", "0"))
    cached_price = Decimal(pricing.get("input_cache_read", pricing.get("prompt", "0")))
    completion_price = Decimal(pricing.get("completion", "0"))
    cost = (prompt - cached) * prompt_price + cached * cached_price + completion * completion_price
    return cost * markup


def prompt_charge(model: FakeModel, body: dict[str, Any], markup: Decimal) -> Decimal:
    """What the prompt alone will cost: the least a call can be charged."""
    prompt = prompt_tokens_for(body.get("messages") or [], body.get("tools"))
    return prompt * Decimal(model.pricing.get("prompt", "0")) * markup


def dry_run_estimate(model: FakeModel, body: dict[str, Any], markup: Decimal) -> Decimal:
    """prompt_tokens_for(messages) x prompt price + max_tokens x completion price, times the markup."""
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
    completion = int(max_tokens) * Decimal(model.pricing.get("completion", "0")) * markup
    return prompt_charge(model, body, markup) + completion


class _Answer(Exception):
    """A finished response: (status, JSON payload)."""

    def __init__(self, status: int, payload: object) -> None:
        self.status, self.payload = status, payload


def _failure(status: int, message: str, code: str | None = None) -> _Answer:
    code = code or STATUS_CODES.get(status, "UPSTREAM_ERROR")
    return _Answer(status, {"success": False, "error": message, "code": code})


def create_app(state: OrthogonalState | None = None) -> ASGIApp:
    """The Orthogonal stand-in as an ASGI app: the Run API under /v1, control at /__control/..."""
    state = state or OrthogonalState()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        raw = await read_body(receive)
        if raw is None:
            return
        path, method = scope["path"], scope["method"]
        if path.startswith("/__control/"):
            status, payload = handle_market_control(state, method, path, raw)
            await send_json(send, status, payload)
            return
        headers = scope_headers(scope)
        body = decode_json(raw)
        query = scope.get("query_string", b"").decode("latin-1")
        state.log.record(method, path, query, headers, body if body is not None else raw.decode("utf-8", "replace"))
        try:
            await _route(state, method, path, headers, body, receive)
        except _Answer as answer:
            await send_json(send, answer.status, answer.payload)
            return
        await send_json(send, 404, {"success": False, "error": "Not found", "code": "NOT_FOUND"})

    return app


async def _route(
    state: OrthogonalState, method: str, path: str, headers: dict[str, str], body: object, receive: Receive
) -> None:
    """Answer by raising _Answer; returning means no route matched."""
    known = path == "/v1/run" or path.startswith(("/v1/run/", "/v1/credits/"))
    if not known:
        return
    test_key = _authenticate(state, headers)
    if path == "/v1/credits/balance" and method == "GET":
        raise _Answer(200, {"balance": f"${state.balance.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"})
    if path == "/v1/credits/check" and method == "POST":
        required = body.get("amountCents") if isinstance(body, dict) else None
        if not isinstance(required, int) or isinstance(required, bool) or required < 0:
            raise _failure(400, "amountCents must be a non-negative integer")
        have = state.cents(state.balance)
        shortfall = max(0, required - have)
        answer = {"sufficient": have >= required, "balanceCents": have, "requiredCents": required}
        raise _Answer(200, {**answer, "shortfallCents": shortfall})
    if path == "/v1/credits/usage" and method == "GET":
        raise _Answer(200, {"usage": list(state.usage[-100:])})
    if method != "POST" or not (path == "/v1/run" or path.startswith("/v1/run/")):
        return
    inner = body.get("body") if isinstance(body, dict) else None
    fault = state.faults.take(path, inner.get("model") if isinstance(inner, dict) else None)
    if fault is not None:
        if await delay_or_hang(fault, receive):
            raise _Answer(499, {})
        if fault.status is not None:
            raise _failure(fault.status, f"injected fault {fault.status}")
    permit = state.limiter.try_acquire()
    if permit is None:
        raise _failure(429, "Rate limit exceeded")
    try:
        if path.startswith("/v1/run/"):
            # Path-style alias: /v1/run/{api}/{path...} with the upstream body as the request body.
            api, _, rest = path.removeprefix("/v1/run/").partition("/")
            envelope: object = {"api": api, "path": "/" + rest, "method": "POST", "body": body}
        else:
            envelope = body
        await _run(state, envelope, headers, test_key)
    finally:
        permit.release()


def _authenticate(state: OrthogonalState, headers: dict[str, str]) -> bool:
    """Refuse a missing or malformed key; return whether it is a test key."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    key = key.strip()
    valid = scheme.lower() == "bearer" and KEY_PATTERN.fullmatch(key) is not None
    if not valid or (state.config.api_key and key != state.config.api_key):
        raise _failure(401, "Invalid API key")
    return key.startswith("orth_test_")


async def _run(state: OrthogonalState, envelope: object, headers: dict[str, str], test_key: bool) -> None:
    config = state.config
    if not isinstance(envelope, dict):
        raise _failure(400, "Request body must be a JSON object")
    api, path = envelope.get("api"), envelope.get("path")
    if not isinstance(api, str) or not api or not isinstance(path, str) or not path:
        raise _failure(400, "Missing required fields: api and path")
    if api != "baseten":
        raise _failure(404, f"API not found: {api}")
    if path not in ENDPOINTS:
        raise _failure(404, f"Endpoint not found: {path}")
    method = envelope.get("method")
    if method is not None and str(method).upper() != ENDPOINTS[path] and config.method_policy == "reject":
        raise _failure(400, f"Method {method} is not allowed for {path}; use {ENDPOINTS[path]}")
    if path == MODELS_PATH:
        raise _Answer(200, _envelope(state, Decimal(0), {"data": [m.listing() for m in state.models.values()]}))
    body = envelope.get("body")
    if not isinstance(body, dict):
        raise _failure(400, "body must be a JSON object")
    model_id = body.get("model")
    model = state.models.get(model_id) if isinstance(model_id, str) else None
    if envelope.get("dryRun") is True:
        raise _dry_run(state, model, body)
    body = dict(body)
    sse = False
    if body.get("stream") is True:
        if config.stream_policy == "reject":
            raise _failure(400, "streaming not supported")
        sse = config.stream_policy == "sse_text"
    if not sse:
        body["stream"] = False
        body.pop("stream_options", None)
    if state.balance <= 0 or (model is not None and state.balance < prompt_charge(model, body, config.markup)):
        raise _failure(402, "Insufficient funds", "INSUFFICIENT_CREDITS")
    if config.latency_ms:
        await asyncio.sleep(config.latency_ms / 1000)
    answer = await state.upstream.chat(body, headers.get("x-fake-fault"))
    if answer.status >= 400:
        raise _upstream_failure(config, answer.status, answer.body)
    text = answer.body.decode("utf-8", "replace")
    data: Any = text if sse else decode_json(answer.body)
    usage = _sse_usage(text) if sse else (data.get("usage") if isinstance(data, dict) else None)
    charge = Decimal(0)
    if model is not None and isinstance(usage, dict):
        charge = token_charge(model, usage, config.markup)
    charge = Decimal(format_usd(charge))  # billed at the precision the envelope shows
    if config.bill_test_keys or not test_key:
        state.balance -= charge
    raise _Answer(200, _envelope(state, charge, data))


def _envelope(state: OrthogonalState, charge: Decimal, data: Any) -> dict[str, Any]:
    request_id = f"run_{int(time.time() * 1000)}_{''.join(secrets.choice(_ALNUM) for _ in range(6))}"
    out: dict[str, Any] = {"success": True}
    style = state.config.price_field_style
    if style in ("price_only", "both"):
        out["price"] = format_usd(charge)
    if style in ("both", "cents_only"):
        out["priceCents"] = state.cents(charge)
    out.update({"data": data, "requestId": request_id, "paymentMethod": "credits"})
    entry = {"requestId": request_id, "api": "baseten", "price": format_usd(charge), "createdAt": int(time.time())}
    state.usage.append(entry)
    return out


def _dry_run(state: OrthogonalState, model: FakeModel | None, body: dict[str, Any]) -> _Answer:
    config = state.config
    if config.dry_run_style == "unsupported":
        return _failure(400, "dryRun is not supported for this endpoint")
    if model is None:
        return _failure(400, f"Unknown model: {body.get('model')!r}")
    price = format_usd(dry_run_estimate(model, body, config.markup))
    if config.dry_run_style == "estimated_price":
        return _Answer(200, {"success": True, "dryRun": True, "estimatedPrice": price, "data": None})
    if config.dry_run_style == "estimate":
        return _Answer(200, {"success": True, "dryRun": True, "estimate": {"price": price, "currency": "USD"}})
    payload: dict[str, Any] = {"success": True, "dryRun": True}
    if config.price_field_style in ("price_only", "both"):
        payload["price"] = price
    if config.price_field_style in ("both", "cents_only"):
        payload["priceCents"] = state.cents(Decimal(price))
    payload["data"] = None
    return _Answer(200, payload)


def _upstream_failure(config: OrthogonalConfig, status: int, raw: bytes) -> _Answer:
    parsed = decode_json(raw)
    message = raw.decode("utf-8", "replace").strip()
    detail: Any = message
    if isinstance(parsed, dict):
        inner = parsed.get("error")
        if isinstance(inner, str):
            message, detail = inner, {"message": inner, "code": status}
        elif isinstance(inner, dict):
            message, detail = str(inner.get("message", "")), inner
        else:
            message, detail = str(parsed.get("message", "")), parsed
    error = detail if config.upstream_error_shape == "object" and isinstance(detail, dict) else message
    answer_status = status if config.upstream_error_status == "passthrough" else 200
    envelope = {"success": False, "error": message, "code": "UPSTREAM_ERROR", "data": {"error": error}}
    return _Answer(answer_status, envelope)


def _sse_usage(transcript: str) -> dict[str, Any] | None:
    usage = None
    for line in transcript.splitlines():
        if line.startswith("data:") and "usage" in line:
            chunk = decode_json(line[5:].strip().encode())
            if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
    return usage
