"""Turn an upstream's HTTP error answer into the gateway's error taxonomy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from service.errors import ErrorKind, UpstreamError

_STATUS_KINDS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.OPERATOR_AUTH,
    402: ErrorKind.INSUFFICIENT_BALANCE,
    403: ErrorKind.OPERATOR_AUTH,
    404: ErrorKind.MODEL_NOT_FOUND,
    408: ErrorKind.TIMEOUT,
    413: ErrorKind.PAYLOAD_TOO_LARGE,
    422: ErrorKind.INVALID_REQUEST,
    429: ErrorKind.RATE_LIMITED,
}


def error_message(body: bytes) -> tuple[str, str | None]:
    """The message and code from any of Baseten's three error shapes (or FastAPI's detail)."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or "no error body"), None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, str):  # shape 1: {"error": "..."}
            return err, None
        if isinstance(err, dict):  # shape 2: {"error": {"code", "message", "type"}}
            return str(err.get("message") or err), _code(err.get("code"))
        if "message" in data:  # shape 3: bare {"message", "type", "code"}
            return str(data["message"]), _code(data.get("code"))
        if "detail" in data:
            return str(data["detail"]), None
    return str(data)[:500], None


def _code(value: object) -> str | None:
    return None if value is None else str(value)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def from_status(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> UpstreamError:
    message, code = error_message(body)
    kind = _STATUS_KINDS.get(status)
    if kind is None:
        kind = ErrorKind.UPSTREAM_SERVER if status >= 500 else ErrorKind.INVALID_REQUEST
    return UpstreamError(
        kind,
        message,
        upstream_status=status,
        upstream_code=code,
        retry_after=retry_after_seconds(headers),
    )
