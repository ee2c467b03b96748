"""Errors in OpenAI's wire shape, and the taxonomy every upstream failure is mapped into."""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict

import orjson

from service.upstreams.base import Evidence


class ErrorDetail(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(TypedDict):
    """OpenAI's error envelope, as every client SDK parses it."""

    error: ErrorDetail


class ErrorKind(StrEnum):
    """Why an upstream attempt failed; decides fallback and what the client is told."""

    INVALID_REQUEST = "invalid_request"  # the body is wrong for this model: the client's error
    PAYLOAD_TOO_LARGE = "payload_too_large"
    OPERATOR_AUTH = "operator_auth"  # the operator's provider key was refused
    INSUFFICIENT_BALANCE = "insufficient_balance"  # the operator's prepaid balance is spent
    SPENDING_LIMIT = "spending_limit"  # the operator's spending limit at the marketplace
    RATE_LIMITED = "rate_limited"
    MODEL_NOT_FOUND = "model_not_found"
    UPSTREAM_SERVER = "upstream_server"  # 5xx or an upstream error passed through a marketplace
    CONNECT = "connect"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"  # malformed body, dropped stream, unexpected shape
    STREAM_ERROR = "stream_error"  # an error event inside a stream
    # Not the upstream's doing: the attempt ended because the client went away (or the request was
    # cancelled), or because of a bug on our side while calling or relaying.
    CLIENT_GONE = "client_disconnected"
    INTERNAL = "internal"


# Failures that say nothing about the client's request: another route may well succeed.
RETRYABLE_KINDS = frozenset(
    {
        ErrorKind.OPERATOR_AUTH,
        ErrorKind.INSUFFICIENT_BALANCE,
        ErrorKind.SPENDING_LIMIT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.MODEL_NOT_FOUND,
        ErrorKind.UPSTREAM_SERVER,
        ErrorKind.CONNECT,
        ErrorKind.TIMEOUT,
        ErrorKind.PROTOCOL,
        ErrorKind.STREAM_ERROR,
        # A bug in one adapter must not fail requests another route can serve.
        ErrorKind.INTERNAL,
    }
)

# What the client sees when this kind is the last failure: (status, type, code).
_CLIENT_VIEW: dict[ErrorKind, tuple[int, str, str]] = {
    ErrorKind.INVALID_REQUEST: (400, "invalid_request_error", "invalid_request"),
    ErrorKind.PAYLOAD_TOO_LARGE: (413, "invalid_request_error", "payload_too_large"),
    ErrorKind.OPERATOR_AUTH: (502, "server_error", "upstream_auth_failed"),
    ErrorKind.INSUFFICIENT_BALANCE: (503, "server_error", "upstream_unavailable"),
    ErrorKind.SPENDING_LIMIT: (503, "server_error", "upstream_unavailable"),
    ErrorKind.RATE_LIMITED: (429, "rate_limit_error", "upstream_rate_limited"),
    ErrorKind.MODEL_NOT_FOUND: (404, "not_found_error", "model_not_found"),
    ErrorKind.UPSTREAM_SERVER: (502, "server_error", "upstream_error"),
    ErrorKind.CONNECT: (502, "server_error", "upstream_connect_failed"),
    ErrorKind.TIMEOUT: (504, "server_error", "upstream_timeout"),
    ErrorKind.PROTOCOL: (502, "server_error", "upstream_protocol_error"),
    ErrorKind.STREAM_ERROR: (502, "server_error", "upstream_stream_error"),
    ErrorKind.CLIENT_GONE: (499, "invalid_request_error", "client_disconnected"),
    ErrorKind.INTERNAL: (502, "server_error", "upstream_error"),
}


# Statuses the OpenAI SDKs retry although they are 4xx: a timeout, a conflict, a rate limit.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 409, 429})
# A client-chosen parameter path is echoed in the body and logged: it is bounded like the values.
MAX_PARAM_CHARS = 200


def is_permanent(status: int) -> bool:
    """A failure that retrying the same request cannot fix (a 402 budget refusal is one)."""
    return 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES


class GatewayError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param if param is None or len(param) <= MAX_PARAM_CHARS else param[:MAX_PARAM_CHARS] + "…"
        self.headers = headers or {}

    def wire_headers(self) -> dict[str, str]:
        """The headers to send with this error: its own, and `x-should-retry: false` on a permanent
        failure so the OpenAI SDKs do not repeat it (they retry 408, 409, 429 and 5xx by default)."""
        if is_permanent(self.status):
            return {**self.headers, "x-should-retry": "false"}
        return self.headers

    def body(self) -> ErrorBody:
        return error_body(self.message, self.type, self.code, self.param)

    def encoded(self) -> bytes:
        return orjson.dumps(self.body())


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> ErrorBody:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid(message: str, param: str | None = None, code: str | None = "invalid_value") -> GatewayError:
    return GatewayError(400, message, type="invalid_request_error", code=code, param=param)


class UpstreamError(Exception):
    """One failed upstream attempt, already mapped to the taxonomy by its adapter."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        upstream_code: str | None = None,
        evidence: Evidence | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.upstream_code = upstream_code
        # What the failed call reported (a marketplace may charge for it; a stream cut short has
        # cumulative usage): the attempt is metered from it.
        self.evidence = evidence if evidence is not None else Evidence()

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def to_client(self, *, route_name: str | None = None) -> GatewayError:
        status, type_, code = _CLIENT_VIEW[self.kind]
        if self.kind in (ErrorKind.INVALID_REQUEST, ErrorKind.PAYLOAD_TOO_LARGE):
            message = self.message
        else:
            where = f" ({route_name})" if route_name else ""
            message = f"Upstream failure{where}: {self.message}"
        headers: dict[str, str] = {}
        if self.retry_after is not None and status in (429, 503):
            headers["retry-after"] = str(max(1, round(self.retry_after)))
        return GatewayError(status, message, type=type_, code=code, headers=headers)

    def stream_event(self, *, route_name: str | None = None) -> bytes:
        err = self.to_client(route_name=route_name)
        return b"data: " + orjson.dumps(err.body()) + b"\n\n"
