"""The Orthogonal adapter against the Orthogonal stand-in, over real HTTP."""

from __future__ import annotations

import json
import socket
from decimal import Decimal

import httpx
import pytest

from service.errors import ErrorKind, UpstreamError
from service.metering.pricing import CentsUnit, CostSource, PriceBook
from service.settings import Timeouts
from service.simulator.engine import prompt_tokens_for
from service.simulator.marketplace import format_usd
from service.simulator.orthogonal import OrthogonalState, create_app, token_charge
from service.simulator.runner import ServerThread
from service.upstreams.base import Usage
from service.upstreams.orthogonal import OrthogonalAdapter
from tests.marketplaces.helpers import JSON_SCHEMA_FORMAT, TOOLS, Running, chat, route

KEY = "orth_live_h2tests"
ROUTE = route("orthogonal")
# Long enough that its charge is near a cent at list price, so every priceCents unit is readable.
LONG = "Summarize this. " + "lorem ipsum dolor sit amet " * 12000


@pytest.fixture(scope="module")
def orth():
    state = OrthogonalState()
    state.api_key = KEY
    running = Running(create_app(state), state)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _fresh(orth):
    orth.reset()


def adapter(http, orth, key=KEY, **kw) -> OrthogonalAdapter:
    return OrthogonalAdapter(http, orth.url + "/v1", key, **kw)


def runs(orth):
    return [r["body"] for r in orth.requests() if r["path"] == "/v1/run"]


def priced(evidence, book: PriceBook | None = None, answered: bool = True):
    """The cost of record the gateway would decide from this evidence (markup 0)."""
    return (book or PriceBook()).cost_of_record(ROUTE, evidence, markup=Decimal(0), answered=answered,
                                                estimate=Usage(prompt_tokens=10, completion_tokens=10))


def expected_charge(orth, body: dict) -> Decimal:
    model = orth.state.models[body["model"]]
    markup = Decimal(orth.control.get("/config").json()["markup"])
    return Decimal(format_usd(token_charge(model, body["usage"], markup)))


async def test_complete_reads_envelope_price_and_body(http, orth):
    a = adapter(http, orth)
    asked = chat(stream=True, stream_options={"include_usage": True}, provider={"only": ["orthogonal"]})
    done = await a.complete(ROUTE, asked)
    assert done.body["choices"][0]["message"]["content"]
    cost = priced(done.evidence)
    assert cost.source == CostSource.ENVELOPE
    assert done.evidence.envelope_usd == cost.provider_usd == expected_charge(orth, done.body) > 0
    assert done.evidence.upstream_request_id.startswith("run_")
    assert done.evidence.usage.completion_tokens == done.body["usage"]["completion_tokens"]
    sent = runs(orth)[0]
    assert sent["api"] == "baseten" and sent["path"] == "/v1/chat/completions" and sent["method"] == "POST"
    assert sent["body"]["stream"] is False and "stream_options" not in sent["body"] and "provider" not in sent["body"]
    assert all(KEY not in json.dumps(r) for r in orth.requests())
    balance = Decimal(orth.control.get("/balance").json()["balance"])
    assert balance == Decimal("5.00") - cost.provider_usd
    assert await a.fetch_balance() == balance.quantize(Decimal("0.01")) == a.balance


async def test_stream_tools_and_json_schema(http, orth):
    a = adapter(http, orth)
    stream = await a.stream(ROUTE, chat("Weather?", tools=TOOLS, tool_choice="required", stream=True))
    chunks = [c async for c in stream]
    heads = [t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get("tool_calls", []) if "id" in t]
    assert heads and heads[0]["function"]["name"] == "get_weather"
    assert chunks[-1]["choices"] == [] and priced(stream.evidence).source == CostSource.ENVELOPE
    shaped = await a.complete(ROUTE, chat("JSON please", response_format=JSON_SCHEMA_FORMAT))
    assert "answer" in json.loads(shaped.body["choices"][0]["message"]["content"])


@pytest.mark.parametrize(("style", "unit"), [("price_only", "cents"), ("both", "cents"), ("both", "1e-5usd")])
async def test_dollar_price_is_the_envelope_cost_and_teaches_the_cents_unit(http, orth, style, unit):
    # A steep markup makes the charge tens of cents: enough for priceCents to teach its unit.
    orth.configure(price_field_style=style, price_cents_unit=unit, markup="20")
    book = PriceBook()
    done = await adapter(http, orth).complete(ROUTE, chat(LONG))
    cost = priced(done.evidence, book)
    assert cost.source == CostSource.ENVELOPE and cost.provider_usd == expected_charge(orth, done.body)
    per_usd = Decimal(100) if unit == "cents" else Decimal(100_000)
    assert book.cents_unit.unit == (per_usd if style == "both" else None)


@pytest.mark.parametrize("unit", ["cents", "1e-5usd"])
async def test_cents_alone_are_never_read_by_guessing_their_unit(http, orth, unit):
    orth.configure(price_field_style="cents_only", price_cents_unit=unit, markup="20")
    done = await adapter(http, orth).complete(ROUTE, chat(LONG))
    assert done.evidence.envelope_usd is None and done.evidence.envelope_cents is not None
    usage = done.evidence.usage
    unknown = priced(done.evidence)
    # Unknown unit: priced from the token estimate and said so, never recorded as the marketplace's charge.
    assert unknown.source == CostSource.ESTIMATED
    assert unknown.provider_usd == ROUTE.estimate.token_cost(usage.prompt_tokens, usage.completion_tokens)
    per_usd = Decimal(100) if unit == "cents" else Decimal(100_000)
    known = priced(done.evidence, PriceBook(CentsUnit(per_usd)))
    assert known.source == CostSource.ENVELOPE
    charge = expected_charge(orth, done.body)
    assert known.provider_usd == ((charge * per_usd).quantize(Decimal(1)) / per_usd).quantize(Decimal("1E-10"))


async def test_insufficient_credits_auth_and_rate_limit(http, orth):
    a = adapter(http, orth)
    orth.control.post("/balance", json={"balance": "0"}).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.INSUFFICIENT_BALANCE and caught.value.upstream_status == 402
    orth.reset()
    for key in ("orth_live_wrong", "sk-not-orthogonal"):
        with pytest.raises(UpstreamError) as caught:
            await adapter(http, orth, key=key).complete(ROUTE, chat())
        assert caught.value.kind is ErrorKind.OPERATOR_AUTH and key not in str(caught.value)
    orth.configure(rpm=1)
    await a.complete(ROUTE, chat())
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.RATE_LIMITED and caught.value.upstream_status == 429


@pytest.mark.parametrize(("passthrough", "shape"),
                         [("passthrough", "string"), ("passthrough", "object"), ("200", "string"), ("200", "object")])
async def test_upstream_errors_pass_through(http, orth, passthrough, shape):
    orth.configure(upstream_error_status=passthrough, upstream_error_shape=shape)
    a = adapter(http, orth)
    bad = chat(response_format={"type": "json_schema", "json_schema": {"name": "", "schema": {}}})
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, bad)
    if passthrough == "passthrough":
        assert caught.value.kind is ErrorKind.INVALID_REQUEST and caught.value.upstream_status == 400
        assert caught.value.message == "Validation: `response_format.json_schema.name` cannot be empty"
    else:  # success:false on a 2xx: the status no longer tells whose fault it was
        assert caught.value.kind is ErrorKind.UPSTREAM_SERVER and caught.value.upstream_status == 200
    orth.control.post("/upstream/faults", json={"fault": "status:503", "times": 1}).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.UPSTREAM_SERVER
    assert orth.control.get("/balance").json()["balance"] == "5.00"


@pytest.mark.parametrize(("status", "kind"), [
    (400, ErrorKind.INVALID_REQUEST), (404, ErrorKind.UPSTREAM_SERVER), (500, ErrorKind.UPSTREAM_SERVER),
    (502, ErrorKind.UPSTREAM_SERVER),
])
async def test_run_api_status_faults(http, orth, status, kind):
    fault = {"match": {"path": "/v1/run"}, "fault": f"status:{status}", "times": 1}
    orth.control.post("/faults", json=fault).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await adapter(http, orth).complete(ROUTE, chat())
    assert caught.value.kind is kind and caught.value.upstream_status == status


@pytest.mark.parametrize("policy", ["reject", "buffer", "sse_text"])
async def test_stream_policies_never_matter_because_stream_is_never_sent(http, orth, policy):
    orth.configure(stream_policy=policy)
    done = await adapter(http, orth).complete(ROUTE, chat(stream=True))
    assert done.body["choices"][0]["message"]["content"]


async def test_timeout_and_connection_refused(http, orth):
    # A hang that ends when the client gives up, so nothing of this call outlives the test.
    orth.control.post("/faults", json={"match": {"path": "/v1/run"}, "fault": "timeout", "times": 1}).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await adapter(http, orth, timeouts=Timeouts(connect=1, first_byte=5, total=0.4)).complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.TIMEOUT
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    closed = OrthogonalAdapter(http, f"http://127.0.0.1:{port}/v1", KEY)
    with pytest.raises(UpstreamError) as caught:
        await closed.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.CONNECT
    assert await closed.quote(ROUTE, chat()) is None  # quotes fail soft


@pytest.mark.parametrize("style", ["price", "estimated_price", "estimate"])
async def test_dry_run_quotes_are_priced_and_cached(http, orth, style):
    orth.configure(dry_run_style=style)
    a = adapter(http, orth)
    body = chat("How much?", max_tokens=500)
    model = orth.state.models[body["model"]]
    prompt = prompt_tokens_for(body["messages"])
    listed = prompt * Decimal(model.pricing["prompt"]) + 500 * Decimal(model.pricing["completion"])
    expected = listed * Decimal("1.10")
    book = PriceBook()
    quote = book.quote_price(await a.quote(ROUTE, body))
    assert quote == Decimal(format_usd(expected))
    assert book.quote_price(await a.quote(ROUTE, chat("How much?", max_tokens=500))) == quote
    assert len(runs(orth)) == 1 and runs(orth)[0]["dryRun"] is True
    assert orth.control.get("/balance").json()["balance"] == "5.00"
    await a.quote(ROUTE, chat("How much?", max_tokens=900))
    assert len(runs(orth)) == 2


async def test_dry_run_cents_only_and_fail_soft(http, orth):
    orth.configure(price_field_style="cents_only", price_cents_unit="cents")
    a = adapter(http, orth)
    quoted = await a.quote(ROUTE, chat(LONG, max_tokens=4000))
    assert quoted is not None and quoted.envelope_cents > 0
    # A priceCents alone is no price until its unit is known.
    assert PriceBook().quote_price(quoted) is None
    assert PriceBook(CentsUnit(Decimal(100))).quote_price(quoted) == quoted.envelope_cents / 100
    orth.configure(dry_run_style="unsupported")
    assert await a.quote(ROUTE, chat("other", max_tokens=10)) is None
    orth.configure(dry_run_style="price")
    orth.control.post("/faults", json={"match": {"path": "/v1/run"}, "fault": "delay_first_byte_ms:800", "times": 1})
    slow = adapter(http, orth, quote_timeout=0.2)
    assert await slow.quote(ROUTE, chat("slow", max_tokens=10)) is None


async def test_malformed_envelopes(http):
    answers = iter([
        (200, b"<html>oops</html>"),
        (200, json.dumps({"success": True, "price": "0.01", "data": None}).encode()),
        (200, json.dumps({"success": True, "price": "0.01", "data": "data: {}\n\ndata: [DONE]\n\n"}).encode()),
        (502, b"<html>bad gateway</html>"),
    ])

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        while (await receive()).get("more_body"):
            pass
        status, body = next(answers)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    server = ServerThread(app).start()
    try:
        a = OrthogonalAdapter(http, server.url + "/v1", KEY)
        kinds = []
        for _ in range(4):
            with pytest.raises(UpstreamError) as caught:
                await a.complete(ROUTE, chat())
            kinds.append(caught.value.kind)
        assert kinds == [ErrorKind.PROTOCOL, ErrorKind.PROTOCOL, ErrorKind.PROTOCOL, ErrorKind.UPSTREAM_SERVER]
    finally:
        server.stop()


async def test_credit_endpoints_and_path_alias(http, orth):
    headers = {"Authorization": f"Bearer {KEY}"}
    check = httpx.post(orth.url + "/v1/credits/check", json={"amountCents": 100}, headers=headers).json()
    assert check == {"sufficient": True, "balanceCents": 500000, "requiredCents": 100, "shortfallCents": 0}
    alias = httpx.post(orth.url + "/v1/run/baseten/v1/chat/completions", json=chat(), headers=headers).json()
    assert alias["success"] is True and alias["data"]["choices"]
    usage = httpx.get(orth.url + "/v1/credits/usage", headers=headers).json()["usage"]
    assert alias["requestId"] in [entry["requestId"] for entry in usage]
