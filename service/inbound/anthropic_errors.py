"""Gateway errors in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.

Statuses and types follow Anthropic's errors page: 400 invalid_request_error (also for other
4xx it does not list), 401 authentication_error, 402 billing_error, 403 permission_error,
404 not_found_error, 409 conflict_error, 413 request_too_large, 429 rate_limit_error,
500 api_error, 504 timeout_error, 529 overloaded_error.

Anthropic never answers 502 or 503, and its SDKs retry every status >= 500 (plus 408, 409, 429)
unless the response says `x-should-retry: false`. So Switchyard's own 5xx become:
- 502 (every route failed: upstream errors, refused connections, broken streams) -> 500 api_error,
  retried: another try may well find a healthy route.
- 504 (upstream timeout) -> 504 timeout_error, retried.
- 503 because routes are full or their circuits open, or budgets or keys cannot be checked right
  now -> 529 overloaded_error, retried (with the gateway's `retry-after`).
- Failures no retry can fix within a client's backoff -> 500 api_error with `x-should-retry:
  false`: the operator's upstream key refused (`upstream_auth_failed`), the operator's prepaid
  balance or spending limit spent (`upstream_unavailable`), no route configured (`no_route`).
Budget refusals (402 with `x-should-retry: false`) keep their header.

A request too long for every model (`context_length_exceeded`) gets Anthropic's wording,
"prompt is too long: ...": Claude Code recognises a context overflow by that phrase in the message
(not by type or status) and compacts the conversation instead of failing.
"""

from __future__ import annotations

from typing import Any

from service.errors import GatewayError

__all__ = ["anthropic_error", "anthropic_error_headers"]

_BY_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    409: (409, "conflict_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    500: (500, "api_error"),
    502: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
    529: (529, "overloaded_error"),
}

# Gateway error codes a retry within seconds cannot fix: the client is told not to retry.
FINAL_CODES = frozenset({"upstream_auth_failed", "upstream_unavailable", "no_route"})
PROMPT_TOO_LONG = "prompt is too long"


def _mapped(err: GatewayError) -> tuple[int, str]:
    if err.status >= 500 and err.code in FINAL_CODES:
        return 500, "api_error"
    known = _BY_STATUS.get(err.status)
    if known is not None:
        return known
    if err.status >= 500:
        return 500, "api_error"
    return err.status, "invalid_request_error"


def anthropic_error(err: GatewayError, *, request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for answering `err` to a Messages API client."""
    status, kind = _mapped(err)
    message = err.message
    if err.code == "context_length_exceeded" and PROMPT_TOO_LONG not in message.lower():
        message = f"{PROMPT_TOO_LONG}: {message}"
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return status, body


def anthropic_error_headers(err: GatewayError) -> dict[str, str]:
    """The headers to send with `anthropic_error(err)`: the gateway's, plus the retry verdict."""
    headers = dict(err.wire_headers())  # permanent 4xx: no retry, as on every API
    if err.status >= 500 and err.code in FINAL_CODES:
        headers["x-should-retry"] = "false"
        headers.pop("retry-after", None)
    return headers
