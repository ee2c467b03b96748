"""The Orthogonal front end: Baseten's chat completions through Orthogonal's Run API, priced per call.

`POST {base}/run` with `{"api":"baseten","path":"/v1/chat/completions","method":"POST","body":{...}}`
answers `{"success":true,"price":"<usd>","data":<upstream body>}`. The docs disagree on the price
fields, so `price` (dollars) is read first and `priceCents` only when its unit is known (see
`read_price`). Orthogonal does not stream: streams are replayed from the full answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from service.catalog.model import Route
from service.errors import ErrorKind, UpstreamError
from service.routing.estimate import base_prompt_estimate
from service.settings import Settings, Timeouts
from service.upstreams.base import Completion, Evidence, Usage
from service.upstreams.baseten import GATEWAY_ONLY_FIELDS
from service.upstreams.synth import ListChunkStream, chunks_from_completion

_DROPPED = ("stream", "stream_options", *GATEWAY_ONLY_FIELDS)
_QUOTE_CACHE_MAX = 1024
_PROMPT_BUCKET_TOKENS = 256
# Where a dryRun answer may put its price (its shape is undocumented).
_QUOTE_KEYS = ("price", "estimatedPrice", "estimate", "estimatedCost", "cost")
_DOLLARS = re.compile(r"\s*\$?\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*(?:USD)?\s*", re.IGNORECASE)

_CODE_KINDS = {
    "UNAUTHORIZED": ErrorKind.OPERATOR_AUTH,
    "INSUFFICIENT_CREDITS": ErrorKind.INSUFFICIENT_BALANCE,
    "INSUFFICIENT_FUNDS": ErrorKind.INSUFFICIENT_BALANCE,
    "RATE_LIMITED": ErrorKind.RATE_LIMITED,
    "BAD_REQUEST": ErrorKind.INVALID_REQUEST,
    "NOT_FOUND": ErrorKind.UPSTREAM_SERVER,  # Orthogonal cannot route our api/path: try elsewhere
    "PAYLOAD_TOO_LARGE": ErrorKind.PAYLOAD_TOO_LARGE,
}
_STATUS_KINDS = {
    401: ErrorKind.OPERATOR_AUTH,
    402: ErrorKind.INSUFFICIENT_BALANCE,
    403: ErrorKind.OPERATOR_AUTH,
    413: ErrorKind.PAYLOAD_TOO_LARGE,
    429: ErrorKind.RATE_LIMITED,
}


def parse_dollars(value: Any) -> Decimal | None:
    """A dollar amount from "0.01", "$0.01", 0.01 or 1; None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value) if value >= 0 else None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str) and (match := _DOLLARS.fullmatch(value)):
        return Decimal(match.group(1).replace(",", ""))
    return None


def _cents(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def read_envelope_price(envelope: dict[str, Any], evidence: Evidence, keys: tuple[str, ...] = ("price",)) -> None:
    """The charge fields of an answer, as sent: dollars under one of `keys`, and `priceCents`
    whose unit the docs contradict (the price book decides what it is worth)."""
    for key in keys:
        dollars = _dollars_field(envelope.get(key))
        if dollars is not None:
            evidence.envelope_usd = dollars
            break
    evidence.envelope_cents = _cents(envelope.get("priceCents"))


def _dollars_field(value: Any) -> Decimal | None:
    if isinstance(value, dict):  # {"price": "..."} / {"usd": ...} / {"amount": ...}
        for key in ("price", "usd", "amount", "value"):
            if (found := parse_dollars(value.get(key))) is not None:
                return found
        return None
    return parse_dollars(value)


def _max_tokens(body: dict[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 4096  # Baseten's documented default


class OrthogonalAdapter:
    front_end = "orthogonal"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts = Timeouts(),
        quote_ttl: float = 30.0,
        quote_timeout: float = 3.0,
        failed_quote_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeouts = timeouts
        self._quote_ttl = quote_ttl
        self._quote_timeout = quote_timeout
        self._failed_quote_ttl = failed_quote_ttl
        self._clock = clock
        self._quotes: dict[str, tuple[float, Evidence | None]] = {}
        self._balance: Decimal | None = None

    @classmethod
    def from_settings(cls, http: httpx.AsyncClient, settings: Settings) -> OrthogonalAdapter:
        if not settings.orthogonal_api_key:
            raise ValueError("ORTHOGONAL_API_KEY is not set")
        return cls(http, settings.orthogonal_base_url, settings.orthogonal_api_key, timeouts=settings.timeouts)

    @property
    def balance(self) -> Decimal | None:
        """The balance from the last `fetch_balance()`, None before any."""
        return self._balance

    async def complete(self, route: Route, body: dict[str, Any], *, key: int = 0) -> Completion:
        payload = self._envelope(route, body)
        status, headers, envelope = await self._post(payload, self._timeouts.total)
        if not (200 <= status < 300) or not isinstance(envelope, dict) or envelope.get("success") is False:
            raise envelope_error(status, headers, envelope)
        data = envelope.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise UpstreamError(
                    ErrorKind.PROTOCOL, "Orthogonal returned text where a completion was expected"
                ) from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(ErrorKind.PROTOCOL, "Orthogonal envelope holds no chat completion")
        choices = data["choices"]
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        request_id = envelope.get("requestId") if isinstance(envelope.get("requestId"), str) else data.get("id")
        evidence = Evidence(
            usage=Usage.from_openai(data.get("usage")),
            upstream_request_id=request_id if isinstance(request_id, str) else None,
            finish_reason=first.get("finish_reason"),
        )
        read_envelope_price(envelope, evidence)
        return Completion(body=data, evidence=evidence)

    async def stream(self, route: Route, body: dict[str, Any], *, key: int = 0) -> ListChunkStream:
        completion = await self.complete(route, body)
        return ListChunkStream(chunks_from_completion(completion.body), completion.evidence)

    async def quote(self, route: Route, body: dict[str, Any]) -> Evidence | None:
        """Orthogonal's price fields for this request before making it (a dryRun), or None if unavailable.

        Cached briefly per (model, prompt size bucket, max_tokens); failures are cached for a few
        seconds so an unreachable Orthogonal does not slow every plan down.
        """
        prompt = base_prompt_estimate(body, 0)
        max_tokens = _max_tokens(body)
        key = hashlib.sha256(
            f"{route.model}|{math.ceil(prompt / _PROMPT_BUCKET_TOKENS)}|{max_tokens}".encode()
        ).hexdigest()
        now = self._clock()
        cached = self._quotes.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        price = await self._dry_run(route, body)
        if len(self._quotes) >= _QUOTE_CACHE_MAX:
            self._quotes = {k: v for k, v in self._quotes.items() if v[0] > now}
            while len(self._quotes) >= _QUOTE_CACHE_MAX:
                self._quotes.pop(next(iter(self._quotes)))
        self._quotes[key] = (now + (self._quote_ttl if price is not None else self._failed_quote_ttl), price)
        return price

    async def fetch_balance(self) -> Decimal | None:
        """GET /credits/balance (`{"balance":"$5.00"}`); the last known balance if it cannot be read."""
        try:
            async with asyncio.timeout(self._quote_timeout):
                response = await self._http.get(f"{self._base}/credits/balance", headers=self._headers)
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, TimeoutError, ValueError):
            return self._balance
        if isinstance(data, dict) and (value := parse_dollars(data.get("balance"))) is not None:
            self._balance = value
        return self._balance

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""

    async def _dry_run(self, route: Route, body: dict[str, Any]) -> Evidence | None:
        payload = {**self._envelope(route, body), "dryRun": True}
        try:
            status, _, envelope = await self._post(payload, self._quote_timeout)
        except UpstreamError:
            return None
        if not (200 <= status < 300) or not isinstance(envelope, dict) or envelope.get("success") is False:
            return None
        for source in (envelope, envelope.get("data")):
            if isinstance(source, dict):
                evidence = Evidence()
                read_envelope_price(source, evidence, keys=_QUOTE_KEYS)
                if evidence.envelope_usd is not None or evidence.envelope_cents is not None:
                    return evidence
        return None

    def _envelope(self, route: Route, body: dict[str, Any]) -> dict[str, Any]:
        upstream = {k: v for k, v in body.items() if k not in _DROPPED}
        upstream["model"] = route.model
        upstream["stream"] = False
        return {"api": "baseten", "path": "/v1/chat/completions", "method": "POST", "body": upstream}

    async def _post(self, payload: dict[str, Any], timeout: float) -> tuple[int, httpx.Headers, Any]:
        http_timeout = httpx.Timeout(timeout, connect=min(self._timeouts.connect, timeout))
        try:
            async with asyncio.timeout(timeout):
                response = await self._http.post(
                    f"{self._base}/run",
                    content=json.dumps(payload, ensure_ascii=False).encode(),
                    headers=self._headers,
                    timeout=http_timeout,
                )
        except TimeoutError:
            raise UpstreamError(ErrorKind.TIMEOUT, f"Orthogonal did not answer within {timeout:g}s") from None
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise UpstreamError(ErrorKind.CONNECT, "could not connect to Orthogonal") from None
        except httpx.TimeoutException:
            raise UpstreamError(ErrorKind.TIMEOUT, "Orthogonal did not answer in time") from None
        except httpx.TransportError as exc:
            message = f"connection to Orthogonal failed ({type(exc).__name__})"
            raise UpstreamError(ErrorKind.PROTOCOL, message) from None
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if envelope is None and 200 <= response.status_code < 300:
            raise UpstreamError(
                ErrorKind.PROTOCOL, "Orthogonal answered with a body that is not JSON",
                upstream_status=response.status_code,
            )
        return response.status_code, response.headers, envelope


def envelope_error(status: int, headers: httpx.Headers, envelope: Any) -> UpstreamError:
    """Map a failed Run API answer (error status, or success:false on any status) to the taxonomy."""
    env = envelope if isinstance(envelope, dict) else {}
    code = env.get("code") if isinstance(env.get("code"), str) else None
    message = _error_message(env) or f"HTTP {status}"
    data = env.get("data")
    upstream_failure = code == "UPSTREAM_ERROR" or (isinstance(data, dict) and "error" in data)
    if code in _CODE_KINDS:
        kind = _CODE_KINDS[code]
    elif upstream_failure:
        if status in (413, 429):
            kind = _STATUS_KINDS[status]
        elif 400 <= status < 500:
            kind = ErrorKind.INVALID_REQUEST
        else:
            kind = ErrorKind.UPSTREAM_SERVER
    elif status in _STATUS_KINDS:
        kind = _STATUS_KINDS[status]
    elif 400 <= status < 500:
        kind = ErrorKind.INVALID_REQUEST
    elif status >= 500 or env.get("success") is False:
        kind = ErrorKind.UPSTREAM_SERVER
    else:
        kind = ErrorKind.PROTOCOL
        message = "Orthogonal answer is not a Run API envelope"
    if kind is not ErrorKind.INVALID_REQUEST:
        message = f"Orthogonal {code or 'error'} (HTTP {status}): {message}"
    retry_after = None
    if kind is ErrorKind.RATE_LIMITED:
        try:
            retry_after = float(headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
    error = UpstreamError(kind, message[:500], upstream_status=status, upstream_code=code, retry_after=retry_after)
    # A failed run may still state a charge.
    read_envelope_price(env, error.evidence)
    if isinstance(env.get("requestId"), str):
        error.evidence.upstream_request_id = env["requestId"]
    return error


def _error_message(env: dict[str, Any]) -> str:
    """The most specific message: the upstream's own (data.error), then Orthogonal's."""
    data = env.get("data")
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict):
            text = inner.get("message") or inner.get("detail")
            if text:
                return str(text)
        elif isinstance(inner, str) and inner:
            return inner
        message = data.get("message")
        if isinstance(message, str) and message:
            return message
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors[:5])
    for key in ("error", "message", "details"):
        value = env.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and value.get("message"):
            return str(value["message"])
    return ""
