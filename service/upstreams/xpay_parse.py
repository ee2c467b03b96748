"""Reading xpay's answers: the billing receipt, the JSON inside tool text, error codes, schemas.

Everything here is pure and tolerant: xpay's exact text formats are undocumented, so each reader
accepts the plausible variants (see upstreams.md section 2.2) and says None when it finds nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, overload

from service.errors import ErrorKind, UpstreamError

_NUMBER = r"\d[\d,]*(?:\.\d+)?|\.\d+"
RECEIPT_RE = re.compile(
    rf"Cost:\s*\$\s*(?P<cost>{_NUMBER})\s*\|\s*Balance:\s*(?P<sign1>-)?\s*\$\s*(?P<sign2>-)?\s*(?P<balance>{_NUMBER})"
    r"(?:\s*\|\s*xpay\S*)?",
    re.IGNORECASE,
)
_CODE_RE = re.compile(
    r"\b(INSUFFICIENT_BALANCE|SPENDING_LIMIT_EXCEEDED|RATE_LIMITED|UNAUTHORIZED"
    r"|UPSTREAM_UNAVAILABLE|UPSTREAM_ERROR)\b"
)
_CODE_KINDS = {
    "INSUFFICIENT_BALANCE": ErrorKind.INSUFFICIENT_BALANCE,
    "SPENDING_LIMIT_EXCEEDED": ErrorKind.SPENDING_LIMIT,
    "RATE_LIMITED": ErrorKind.RATE_LIMITED,
    "UNAUTHORIZED": ErrorKind.OPERATOR_AUTH,
    "UPSTREAM_UNAVAILABLE": ErrorKind.UPSTREAM_SERVER,
}
_LEADING_STATUS = re.compile(r"\s*(?:HTTP\s*)?([1-5]\d\d)\b[\s:\-]*")
_RETRY_AFTER = re.compile(r"retry[ _-]?after\D{0,12}(\d+(?:\.\d+)?)", re.IGNORECASE)
_BALANCE_TEXT = re.compile(rf"Balance:\s*(-)?\s*\$?\s*(-)?\s*({_NUMBER})", re.IGNORECASE)
_MAX_JSON_STARTS = 8


@dataclass(frozen=True, slots=True)
class Receipt:
    cost: Decimal
    balance: Decimal


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """The properties of a tool's inputSchema, enough to tell how each field must be sent."""

    properties: dict[str, Any] = field(default_factory=dict)

    def wants_string(self, key: str) -> bool:
        """True when the schema types `key` a string and neither an array nor an object."""
        prop = self.properties.get(key)
        if not isinstance(prop, dict):
            return False
        types: set[str] = set()
        for part in [prop, *(prop.get("anyOf") or []), *(prop.get("oneOf") or [])]:
            declared = part.get("type") if isinstance(part, dict) else None
            if isinstance(declared, str):
                types.add(declared)
            elif isinstance(declared, list):
                types.update(t for t in declared if isinstance(t, str))
        return "string" in types and not types & {"array", "object"}


def _decimal(text: str, negative: bool = False) -> Decimal:
    value = Decimal(text.replace(",", ""))
    return -value if negative else value


def split_receipt(text: str) -> tuple[str, Receipt | None]:
    """Take xpay's billing receipt (the last one) out of a tool's text; return the rest and the receipt."""
    receipts = list(RECEIPT_RE.finditer(text))
    last = receipts[-1] if receipts else None
    if last is None:
        return text.strip(), None
    receipt = Receipt(
        cost=_decimal(last.group("cost")),
        balance=_decimal(last.group("balance"), bool(last.group("sign1") or last.group("sign2"))),
    )
    rest = (text[: last.start()] + text[last.end() :]).strip()
    return rest.rstrip("-—|").strip(), receipt


def tool_texts(result: dict[str, Any]) -> list[str]:
    content = result.get("content")
    return [
        block["text"]
        for block in (content if isinstance(content, list) else [])
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in text: the whole text, or one embedded after a prefix."""
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return whole
    decoder = json.JSONDecoder()
    start = stripped.find("{")
    for _ in range(_MAX_JSON_STARTS):
        if start < 0:
            return None
        try:
            found, _end = decoder.raw_decode(stripped, start)
        except ValueError:
            start = stripped.find("{", start + 1)
            continue
        return found if isinstance(found, dict) else None
    return None


def parse_tool_schema(text: str, structured: Any = None) -> ToolSchema | None:
    """Read the inputSchema out of xpay_details' answer, whatever wraps it."""
    for candidate in (first_json_object(text), structured, *_nested(structured)):
        if not isinstance(candidate, dict):
            continue
        for holder in (candidate, candidate.get("tool"), candidate.get("result")):
            if not isinstance(holder, dict):
                continue
            for key in ("inputSchema", "input_schema", "schema", "parameters"):
                schema = holder.get(key)
                if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
                    return ToolSchema(schema["properties"])
            if isinstance(holder.get("properties"), dict):
                return ToolSchema(holder["properties"])
    return None


def _nested(structured: Any) -> list[Any]:
    if isinstance(structured, dict) and isinstance(structured.get("result"), str):
        return [first_json_object(structured["result"])]
    return []


def parse_balance_text(text: str) -> Decimal | None:
    """xpay_balance's answer: `Balance: $4.99`, or JSON such as {"balance": "4.99"}."""
    data = first_json_object(text)
    if data is not None:
        value = data.get("balance", data.get("balance_usd"))
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            match = re.fullmatch(rf"\s*(-)?\s*\$?\s*({_NUMBER})\s*", str(value))
            if match:
                return _decimal(match.group(2), bool(match.group(1)))
    match = _BALANCE_TEXT.search(text)
    return _decimal(match.group(3), bool(match.group(1) or match.group(2))) if match else None


@overload
def error_from_text(text: str, default: ErrorKind = ...) -> UpstreamError: ...
@overload
def error_from_text(text: str, default: None) -> UpstreamError | None: ...


def error_from_text(text: str, default: ErrorKind | None = ErrorKind.UPSTREAM_SERVER) -> UpstreamError | None:
    """Map an xpay error text (`INSUFFICIENT_BALANCE: ...`, `UPSTREAM_ERROR: <body>`, ...) to an
    UpstreamError; with default=None, return None when the text names no known failure."""
    match = _CODE_RE.search(text)
    if match:
        code = match.group(1)
        detail = text[match.end() :].lstrip(" :-—\n")
        if code == "UPSTREAM_ERROR":
            return upstream_error(detail)
        error = UpstreamError(
            _CODE_KINDS[code], f"xpay {code}" + (f": {detail[:300]}" if detail else ""), upstream_code=code
        )
        if code == "RATE_LIMITED" and (after := _RETRY_AFTER.search(detail)):
            error.retry_after = float(after.group(1))
        return error
    lowered = text.lower()
    if "tool not found" in lowered or "unknown tool" in lowered:
        return UpstreamError(ErrorKind.PROTOCOL, f"xpay tool not found: {text.strip()[:200]}")
    if "input validation error" in lowered:
        return UpstreamError(ErrorKind.PROTOCOL, f"xpay rejected the tool input: {text.strip()[:300]}")
    if default is None:
        return None
    return UpstreamError(default, f"xpay tool error: {text.strip()[:300]}")


def upstream_error(detail: str) -> UpstreamError:
    """`UPSTREAM_ERROR: <body>`: the upstream's own failure. A 4xx means the request itself was bad."""
    status, message = upstream_status(detail)
    if status is None or status >= 500:
        kind = ErrorKind.UPSTREAM_SERVER
    elif status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status == 413:
        kind = ErrorKind.PAYLOAD_TOO_LARGE
    elif status == 404:
        kind = ErrorKind.MODEL_NOT_FOUND
    elif status in (401, 402, 403):
        kind = ErrorKind.UPSTREAM_SERVER  # xpay's own upstream credentials or budget, not the client's
    else:
        kind = ErrorKind.INVALID_REQUEST
    if kind is not ErrorKind.INVALID_REQUEST:
        message = "xpay UPSTREAM_ERROR" + (f" (HTTP {status})" if status else "") + f": {message}"
    return UpstreamError(kind, message, upstream_status=status, upstream_code="UPSTREAM_ERROR")


def upstream_status(detail: str) -> tuple[int | None, str]:
    """The upstream HTTP status and message in an upstream error body, as far as it tells them."""
    status: int | None = None
    rest = detail
    if lead := _LEADING_STATUS.match(detail):
        status, rest = int(lead.group(1)), detail[lead.end() :]
    message = rest.strip()[:300]
    body = first_json_object(rest)
    if body is None:
        return status, message
    for key in ("status", "status_code", "statusCode"):
        if status is None and _is_status(body.get(key)):
            status = body[key]
    error = body.get("error")
    if isinstance(error, dict):
        if status is None and _is_status(error.get("code")):
            status = error["code"]
        if status is None and _is_status(error.get("status")):
            status = error["status"]
        if status is None and error.get("type") in ("Bad Request", "invalid_request_error"):
            status = 400
        message = str(error.get("message") or message)
    elif isinstance(error, str) and error:
        message = error
    else:
        if status is None and _is_status(body.get("code")):
            status = body["code"]
        if status is None and body.get("type") in ("Bad Request", "invalid_request_error"):
            status = 400
        message = str(body.get("message") or body.get("detail") or message)
    return status, message[:300]


def _is_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599
