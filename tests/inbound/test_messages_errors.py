"""Gateway errors in Anthropic's shape, with statuses the anthropic SDK classifies and retries rightly."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from service.errors import ErrorKind, GatewayError, UpstreamError
from service.inbound.anthropic_errors import anthropic_error, anthropic_error_headers

_CLIENT = anthropic.Anthropic(api_key="sk-test", base_url="http://127.0.0.1:9")


def sdk_view(err: GatewayError) -> tuple[type[Exception], bool]:
    """The exception class the anthropic SDK raises for our answer, and whether it retries it."""
    status, body = anthropic_error(err)
    response = httpx2.Response(
        status,
        headers=anthropic_error_headers(err),
        json=body,
        request=httpx2.Request("POST", "http://x/v1/messages"),
    )
    error = _CLIENT._make_status_error_from_response(response)
    return type(error), _CLIENT._should_retry(response)


@pytest.mark.parametrize(
    ("status", "code", "expected_status", "kind"),
    [
        (400, "invalid_value", 400, "invalid_request_error"),
        (401, "invalid_api_key", 401, "authentication_error"),
        (402, "budget_exceeded", 402, "billing_error"),
        (403, "model_not_allowed", 403, "permission_error"),
        (404, "model_not_found", 404, "not_found_error"),
        (409, "tenant_exists", 409, "conflict_error"),
        (413, "payload_too_large", 413, "request_too_large"),
        (415, "unsupported_media_type", 415, "invalid_request_error"),
        (429, "rate_limit_requests", 429, "rate_limit_error"),
        (500, "internal_error", 500, "api_error"),
        (502, "upstream_error", 500, "api_error"),
        (502, "upstream_auth_failed", 500, "api_error"),
        (503, "no_route_available", 529, "overloaded_error"),
        (503, "budget_unavailable", 529, "overloaded_error"),
        (503, "upstream_unavailable", 500, "api_error"),
        (503, "no_route", 500, "api_error"),
        (504, "upstream_timeout", 504, "timeout_error"),
        (507, None, 500, "api_error"),
    ],
)
def test_status_and_type_follow_anthropics_table(
    status: int, code: str | None, expected_status: int, kind: str
) -> None:
    err = GatewayError(status, "Something went wrong.", type="server_error", code=code)
    assert anthropic_error(err) == (
        expected_status,
        {"type": "error", "error": {"type": kind, "message": "Something went wrong."}},
    )


def test_a_context_overflow_says_prompt_is_too_long_as_claude_code_expects() -> None:
    err = GatewayError(
        400, "This request is longer than every eligible model allows.", code="context_length_exceeded"
    )
    status, payload = anthropic_error(err)
    assert (status, payload["error"]["type"]) == (400, "invalid_request_error")
    assert (
        payload["error"]["message"]
        == "prompt is too long: This request is longer than every eligible model allows."
    )
    already = GatewayError(400, "Prompt is too long: 300000 tokens > 262144", code="context_length_exceeded")
    assert anthropic_error(already)[1]["error"]["message"] == "Prompt is too long: 300000 tokens > 262144"


def test_the_request_id_rides_in_the_body_when_given() -> None:
    answer = anthropic_error(
        GatewayError(404, "No such model.", type="not_found_error"), request_id="req_123"
    )
    assert answer == (
        404,
        {
            "type": "error",
            "error": {"type": "not_found_error", "message": "No such model."},
            "request_id": "req_123",
        },
    )


# What each way an attempt can fail becomes, once every route failed: (SDK exception, retried).
UPSTREAM_CASES: list[tuple[ErrorKind, type[Exception], bool]] = [
    (ErrorKind.INVALID_REQUEST, anthropic.BadRequestError, False),
    (ErrorKind.PAYLOAD_TOO_LARGE, anthropic.ContentTooLargeError, False),
    (ErrorKind.OPERATOR_AUTH, anthropic.InternalServerError, False),
    (ErrorKind.INSUFFICIENT_BALANCE, anthropic.InternalServerError, False),
    (ErrorKind.SPENDING_LIMIT, anthropic.InternalServerError, False),
    (ErrorKind.RATE_LIMITED, anthropic.RateLimitError, True),
    (ErrorKind.MODEL_NOT_FOUND, anthropic.NotFoundError, False),
    (ErrorKind.UPSTREAM_SERVER, anthropic.InternalServerError, True),
    (ErrorKind.CONNECT, anthropic.InternalServerError, True),
    (ErrorKind.TIMEOUT, anthropic.GatewayTimeoutError, True),
    (ErrorKind.PROTOCOL, anthropic.InternalServerError, True),
    (ErrorKind.STREAM_ERROR, anthropic.InternalServerError, True),
    (ErrorKind.INTERNAL, anthropic.InternalServerError, True),
    # Nobody reads it (the client left), but it must still be a well-formed, final answer.
    (ErrorKind.CLIENT_GONE, anthropic.ClientClosedRequestError, False),
]


def test_every_upstream_failure_kind_is_covered() -> None:
    assert {case[0] for case in UPSTREAM_CASES} == set(ErrorKind)


@pytest.mark.parametrize(
    ("kind", "exception", "retried"), UPSTREAM_CASES, ids=[c[0].value for c in UPSTREAM_CASES]
)
def test_the_sdk_retries_exactly_the_transient_upstream_failures(
    kind: ErrorKind, exception: type[Exception], retried: bool
) -> None:
    err = UpstreamError(kind, "it failed", retry_after=3).to_client(route_name="baseten:m")
    assert sdk_view(err) == (exception, retried)


@pytest.mark.parametrize(
    ("err", "exception", "retried"),
    [
        (
            GatewayError(
                503, "Every route is at capacity.", code="no_route_available", headers={"retry-after": "5"}
            ),
            anthropic.OverloadedError,
            True,
        ),
        (
            GatewayError(402, "Budget spent.", code="budget_exceeded", headers={"x-should-retry": "false"}),
            anthropic.PaymentRequiredError,
            False,
        ),
        (
            GatewayError(429, "Rate limit.", code="rate_limit_requests", headers={"retry-after": "2"}),
            anthropic.RateLimitError,
            True,
        ),
        (
            GatewayError(401, "Incorrect API key provided.", code="invalid_api_key"),
            anthropic.AuthenticationError,
            False,
        ),
        (
            GatewayError(403, "Model not allowed.", code="model_not_allowed"),
            anthropic.PermissionDeniedError,
            False,
        ),
        (GatewayError(400, "Bad.", param="messages"), anthropic.BadRequestError, False),
    ],
)
def test_the_sdk_view_of_gateway_errors(err: GatewayError, exception: type[Exception], retried: bool) -> None:
    assert sdk_view(err) == (exception, retried)


def test_headers_keep_the_gateways_and_say_when_not_to_retry() -> None:
    capacity = GatewayError(
        503, "Full.", code="no_route_available", headers={"retry-after": "5", "x-request-id": "r1"}
    )
    assert anthropic_error_headers(capacity) == {"retry-after": "5", "x-request-id": "r1"}
    spent = GatewayError(503, "Balance spent.", code="upstream_unavailable", headers={"retry-after": "30"})
    assert anthropic_error_headers(spent) == {"x-should-retry": "false"}
    original: dict[str, Any] = {"retry-after": "30"}
    assert spent.headers == original  # the error itself is left as it was
