"""Pure pieces: xpay's receipt and error texts, Orthogonal's price fields, synthesized streams, limits."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from service.errors import ErrorKind
from service.metering.pricing import CentsUnit, CostSource, PriceBook
from service.simulator.marketplace import format_usd
from service.upstreams.base import Evidence, Usage
from service.upstreams.mcp_client import redact_url
from service.upstreams.orthogonal import envelope_error, parse_dollars, read_envelope_price
from service.upstreams.ratelimit import ClientRateLimiter
from service.upstreams.synth import ListChunkStream, chunks_from_completion, split_text
from service.upstreams.xpay_parse import (
    ToolSchema,
    error_from_text,
    first_json_object,
    parse_balance_text,
    parse_tool_schema,
    split_receipt,
)

BODY = {"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}


@pytest.mark.parametrize(
    ("text", "cost", "balance"),
    [
        (json.dumps(BODY) + "\n\nCost: $0.01 | Balance: $4.99 | xpay✦", "0.01", "4.99"),
        (json.dumps(BODY) + "\nCost:$0.010|Balance:$1,234.50", "0.010", "1234.50"),
        (json.dumps(BODY) + "\n---\ncost: $ .5 | balance: $0 | xpay", ".5", "0"),
        (json.dumps(BODY) + "\nCost: $0.01 | Balance: -$0.01 | xpay✦", "0.01", "-0.01"),
        # The reply itself may mention a receipt: the last one is xpay's.
        (json.dumps({**BODY, "note": "Cost: $9 | Balance: $9"}) + "\nCost: $0.01 | Balance: $2.00 | xpay✦",
         "0.01", "2.00"),
    ],
)
def test_receipt_is_split_off_and_read_exactly(text, cost, balance):
    rest, receipt = split_receipt(text)
    assert receipt is not None
    assert receipt.cost == Decimal(cost) and receipt.balance == Decimal(balance)
    assert first_json_object(rest)["id"] == "chatcmpl-1"


@pytest.mark.parametrize("text", ["", "no receipt here", "Cost: $abc | Balance: $1", "Cost: $0.01 Balance $1"])
def test_text_without_a_receipt_is_left_alone(text):
    rest, receipt = split_receipt(text)
    assert receipt is None and rest == text.strip()


def test_json_is_found_after_a_prefix_and_garbage_gives_none():
    assert first_json_object('Result:\n{"a": 1} trailing')["a"] == 1
    assert first_json_object("{broken {\"b\": 2}")["b"] == 2
    assert first_json_object("[1, 2]") is None
    assert first_json_object("nothing") is None


def test_schema_says_which_fields_go_as_strings():
    text = json.dumps({"name": "t", "inputSchema": {"properties": {
        "messages": {"type": "string"}, "tools": {"type": ["string", "array"]}, "stop": {"anyOf": [{"type": "string"}]},
        "response_format": {"type": "object"}}}})
    schema = parse_tool_schema(text)
    assert schema.wants_string("messages") and schema.wants_string("stop")
    assert not schema.wants_string("tools") and not schema.wants_string("response_format")
    assert not schema.wants_string("unknown")
    assert parse_tool_schema("plain words") is None
    tool = {"tool": {"input_schema": {"properties": {"m": {"type": "string"}}}}}
    nested = parse_tool_schema("", {"result": json.dumps(tool)})
    assert nested == ToolSchema({"m": {"type": "string"}})


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Error executing tool xpay_run: INSUFFICIENT_BALANCE: Balance $0.00", ErrorKind.INSUFFICIENT_BALANCE),
        ("SPENDING_LIMIT_EXCEEDED: limit reached", ErrorKind.SPENDING_LIMIT),
        ("RATE_LIMITED: retry after 7s", ErrorKind.RATE_LIMITED),
        ("UNAUTHORIZED", ErrorKind.OPERATOR_AUTH),
        ("UPSTREAM_UNAVAILABLE: {\"error\":\"bad gateway\"}", ErrorKind.UPSTREAM_SERVER),
        ('UPSTREAM_ERROR: {"error":{"code":400,"message":"Validation: bad","type":"Bad Request"}}',
         ErrorKind.INVALID_REQUEST),
        ('UPSTREAM_ERROR: {"message":"bare","type":"Bad Request","code":400}', ErrorKind.INVALID_REQUEST),
        ("UPSTREAM_ERROR: 422 unprocessable", ErrorKind.INVALID_REQUEST),
        ('UPSTREAM_ERROR: {"error":"rate limit exceeded","status":429}', ErrorKind.RATE_LIMITED),
        ('UPSTREAM_ERROR: {"error":"please check the api-key you provided"}', ErrorKind.UPSTREAM_SERVER),
        ("UPSTREAM_ERROR: HTTP 403 forbidden", ErrorKind.UPSTREAM_SERVER),
        ('UPSTREAM_ERROR: {"error":"internal server error"}', ErrorKind.UPSTREAM_SERVER),
        ("Tool not found: baseten_chat_completions", ErrorKind.PROTOCOL),
        ("Input validation error: 'input' is a required property", ErrorKind.PROTOCOL),
        ("something odd happened", ErrorKind.UPSTREAM_SERVER),
    ],
)
def test_error_texts_map_to_the_taxonomy(text, kind):
    assert error_from_text(text).kind is kind


def test_rate_limit_text_carries_retry_after_and_bad_request_keeps_upstream_message():
    assert error_from_text("RATE_LIMITED: Retry after 12s").retry_after == 12
    error = error_from_text('UPSTREAM_ERROR: {"error":{"code":400,"message":"Validation: x","type":"Bad Request"}}')
    assert error.message == "Validation: x" and error.upstream_status == 400
    assert error_from_text("fine", default=None) is None


def test_balance_texts():
    assert parse_balance_text("Balance: $4.99") == Decimal("4.99")
    assert parse_balance_text('{"balance": "4.99", "currency": "USD"}') == Decimal("4.99")
    assert parse_balance_text('{"balance": 3}') == Decimal(3)
    assert parse_balance_text("no idea") is None


def test_dollars_and_cents_readings():
    assert parse_dollars("$0.01") == Decimal("0.01") and parse_dollars("0.000123") == Decimal("0.000123")
    assert parse_dollars(0.5) == Decimal("0.5") and parse_dollars(True) is None and parse_dollars("-1") is None


def _envelope(fields: dict) -> Evidence:
    evidence = Evidence(usage=Usage(prompt_tokens=1000, completion_tokens=100))
    read_envelope_price(fields, evidence, keys=("price", "estimate"))
    return evidence


def test_envelope_fields_are_evidence_and_cents_are_never_guessed():
    from service.catalog.loader import load_catalog

    route = load_catalog().find_route("orthogonal", "openai/gpt-oss-120b")
    assert route is not None
    book = PriceBook()

    def cost(fields: dict):
        return book.cost_of_record(route, _envelope(fields), markup=Decimal(0), answered=True, estimate=Usage())

    # priceCents alone, unit unknown: the token estimate, flagged as such, whatever the figure.
    for cents in (5, 5000, 5_000_000):
        alone = cost({"priceCents": cents})
        assert alone.source == CostSource.ESTIMATED
        assert alone.provider_usd == route.estimate.token_cost(1000, 100)
    # An envelope with both fields is the charge in dollars and teaches the unit.
    both = cost({"price": "0.10", "priceCents": 10000})
    assert both.source == CostSource.ENVELOPE and both.provider_usd == Decimal("0.10")
    assert book.cents_unit.unit == Decimal(100_000)
    assert cost({"priceCents": 3}).provider_usd == Decimal("0.00003")
    other = PriceBook()
    other.cost_of_record(route, _envelope({"price": "0.10", "priceCents": 10}), markup=Decimal(0), answered=True,
                         estimate=Usage())
    assert other.cents_unit.unit == Decimal(100)
    # A configured unit is never overwritten by what an answer seems to say.
    fixed = PriceBook(CentsUnit(Decimal(100)))
    fixed.cost_of_record(route, _envelope({"price": "0.10", "priceCents": 10000}), markup=Decimal(0),
                         answered=True, estimate=Usage())
    assert fixed.cents_unit.unit == Decimal(100)
    assert _envelope({"estimate": {"price": "$0.20"}}).envelope_usd == Decimal("0.20")


@pytest.mark.parametrize(
    ("status", "envelope", "kind"),
    [
        (401, {"success": False, "error": "Invalid API key", "code": "UNAUTHORIZED"}, ErrorKind.OPERATOR_AUTH),
        (402, {"success": False, "error": "Insufficient funds", "code": "INSUFFICIENT_CREDITS"},
         ErrorKind.INSUFFICIENT_BALANCE),
        (429, {"success": False, "code": "RATE_LIMITED"}, ErrorKind.RATE_LIMITED),
        (400, {"data": {"error": "Missing required parameter: q"}}, ErrorKind.INVALID_REQUEST),
        (422, {"success": False, "code": "UPSTREAM_ERROR", "data": {"error": {"message": "bad"}}},
         ErrorKind.INVALID_REQUEST),
        (500, {"data": {"error": ""}, "error": "upstream unavailable"}, ErrorKind.UPSTREAM_SERVER),
        (503, None, ErrorKind.UPSTREAM_SERVER),
        (200, {"success": False, "code": "UPSTREAM_ERROR", "data": {"error": "x"}}, ErrorKind.UPSTREAM_SERVER),
        (200, {"success": False, "error": "nope", "code": "BAD_REQUEST"}, ErrorKind.INVALID_REQUEST),
        (404, {"success": False, "error": "API not found", "code": "NOT_FOUND"}, ErrorKind.UPSTREAM_SERVER),
    ],
)
def test_orthogonal_envelope_errors(status, envelope, kind):
    import httpx

    assert envelope_error(status, httpx.Headers({"retry-after": "3"}), envelope).kind is kind


def test_orthogonal_error_messages_prefer_the_upstream_words():
    import httpx

    error = envelope_error(400, httpx.Headers(), {"data": {"error": {"message": "Validation: x"}}, "error": "upstream"})
    assert error.message == "Validation: x"
    assert envelope_error(429, httpx.Headers({"retry-after": "3"}), {"code": "RATE_LIMITED"}).retry_after == 3


def test_redacted_url_hides_the_key():
    assert "secret" not in redact_url("https://mcp.xpay.sh/mcp?key=secret&x=1")
    assert redact_url("http://h/mcp") == "http://h/mcp"


@pytest.mark.parametrize(("amount", "text"), [("0.01", "0.01"), ("4.9", "4.90"), ("0.0000183", "0.000018"),
                                              ("3", "3.00"), ("0.0000005", "0.000001")])
def test_money_format(amount, text):
    assert format_usd(Decimal(amount)) == text


def test_split_text_keeps_every_character():
    text = "word " * 40 + "x" * 130
    pieces = split_text(text)
    assert "".join(pieces) == text and len(pieces) > 3 and max(map(len, pieces)) <= 48
    assert split_text("") == []


def _body(**message):
    return {
        "id": "chatcmpl-9", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def test_synthesized_stream_reassembles_the_completion():
    body = _body(content="The answer is " * 10, reasoning_content="Think " * 20)
    chunks = chunks_from_completion(body)
    assert all(c["id"] == "chatcmpl-9" and c["created"] == 7 and c["model"] == "m" for c in chunks)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == body["choices"][0]["message"]["content"]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == body["choices"][0]["message"]["reasoning_content"]
    first_content = next(i for i, d in enumerate(deltas) if "content" in d)
    assert all("reasoning_content" not in d for d in deltas[first_content:])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7


def test_synthesized_tool_call_chunks():
    args = json.dumps({"city": "Paris", "days": 3, "notes": "x" * 80}, indent=2)
    body = _body(tool_calls=[{"id": "call-1", "type": "function", "function": {"name": "weather", "arguments": args}}])
    body["choices"][0]["finish_reason"] = "tool_calls"
    chunks = chunks_from_completion(body)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
             if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": "call-1", "type": "function",
                        "function": {"name": "weather", "arguments": ""}}
    assert "".join(c["function"]["arguments"] for c in calls) == args and len(calls) > 2
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_list_chunk_stream_yields_and_stops_when_closed():
    result = Evidence(receipt_usd=Decimal("0.01"))
    stream = ListChunkStream([{"n": 1}, {"n": 2}, {"n": 3}], result)
    seen = []
    async for chunk in stream:
        seen.append(chunk["n"])
        if len(seen) == 2:
            await stream.aclose()
    assert seen == [1, 2] and stream.evidence is result


def test_rate_limiter_window_and_concurrency():
    now = [100.0]
    limiter = ClientRateLimiter(rpm=2, concurrency=5, margin=1.0, clock=lambda: now[0])
    first, second = limiter.try_acquire(), limiter.try_acquire()
    assert first and second and limiter.try_acquire() is None
    assert limiter.retry_after() == pytest.approx(61.0)
    now[0] += 60.5
    assert limiter.try_acquire() is None  # the margin keeps the window a second longer than the server's
    now[0] += 0.6
    assert limiter.try_acquire() is not None
    capped = ClientRateLimiter(rpm=None, concurrency=1)
    permit = capped.try_acquire()
    assert capped.try_acquire() is None and capped.retry_after() == 1.0
    permit.release()
    permit.release()  # harmless twice
    assert capped.in_flight == 0 and capped.try_acquire() is not None
    with pytest.raises(ValueError, match="rpm must be at least 1"):
        ClientRateLimiter(rpm=0, concurrency=1)
