"""The xpay adapter against the xpay stand-in, over real HTTP (and the stand-in against the real MCP SDK)."""

from __future__ import annotations

import asyncio
import json
import socket
from decimal import Decimal

import pytest

from service.errors import ErrorKind, UpstreamError
from service.settings import Timeouts
from service.simulator.xpay import XpayState, create_app
from service.upstreams.xpay import XpayAdapter
from tests.marketplaces.helpers import JSON_SCHEMA_FORMAT, TOOLS, Running, chat, route

KEY = "xpay_sk_test_h2"
ROUTE = route("xpay")


@pytest.fixture(scope="module")
def xpay():
    running = Running(*_app())
    yield running
    running.stop()


def _app():
    state = XpayState()
    state.api_key = KEY
    return create_app(state), state


@pytest.fixture(autouse=True)
def _fresh(xpay):
    xpay.reset()


def adapter(http, xpay, **kw) -> XpayAdapter:
    return XpayAdapter(http, xpay.url + "/mcp", kw.pop("key", KEY), **kw)


def tool_calls(xpay, name="xpay_run"):
    return [
        r["body"] for r in xpay.requests()
        if isinstance(r["body"], dict) and r["body"].get("method") == "tools/call"
        and r["body"]["params"]["name"] == name
    ]


async def test_complete_reads_body_usage_and_receipt(http, xpay):
    a = adapter(http, xpay)
    asked = chat(stream=True, stream_options={"include_usage": True}, provider={"sort": "price"})
    done = await a.complete(ROUTE, asked)
    assert done.body["object"] == "chat.completion" and done.body["choices"][0]["message"]["content"]
    result = done.evidence
    assert result.receipt_usd == Decimal("0.01")
    assert result.balance_usd == Decimal("4.99") == a.balance
    assert result.upstream_request_id == done.body["id"]
    assert result.usage.prompt_tokens == done.body["usage"]["prompt_tokens"] > 0
    assert result.finish_reason == "stop"
    sent = tool_calls(xpay)[0]["params"]["arguments"]
    assert sent["tool"] == "baseten_chat_completions"
    # Never streamed through MCP, and the gateway's own fields never leave it.
    assert not {"stream", "stream_options", "provider"} & set(sent["input"])
    assert isinstance(sent["input"]["messages"], list)
    assert all("fake-xpay" not in json.dumps(r) and KEY not in json.dumps(r) for r in xpay.requests())


async def test_stream_is_synthesized_from_the_full_answer(http, xpay):
    a = adapter(http, xpay)
    stream = await a.stream(ROUTE, chat("Tell me a story", stream=True))
    chunks = [c async for c in stream]
    full = await a.complete(ROUTE, chat("Tell me a story"))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == full.body["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert stream.evidence.receipt_usd == Decimal("0.01") and stream.evidence.balance_usd == Decimal("4.99")


async def test_tools_and_json_schema_bodies(http, xpay):
    a = adapter(http, xpay)
    called = await a.complete(ROUTE, chat("Weather in Paris?", tools=TOOLS, tool_choice="required"))
    call = called.body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and "city" in json.loads(call["function"]["arguments"])
    assert called.evidence.finish_reason == "tool_calls"
    shaped = await a.complete(ROUTE, chat("Answer in JSON", response_format=JSON_SCHEMA_FORMAT))
    assert "answer" in json.loads(shaped.body["choices"][0]["message"]["content"])
    stream = await a.stream(ROUTE, chat("Weather in Paris?", tools=TOOLS, tool_choice="required"))
    deltas = [c["choices"][0]["delta"] for c in [c async for c in stream] if c["choices"]]
    arguments = "".join(t["function"]["arguments"] for d in deltas for t in d.get("tool_calls", []))
    assert arguments == call["function"]["arguments"]


async def test_messages_as_string_schema_sends_json_strings(http, xpay):
    xpay.configure(messages_type="string")
    a = adapter(http, xpay)
    choice = {"type": "function", "function": {"name": "get_weather"}}
    done = await a.complete(ROUTE, chat("Weather?", tools=TOOLS, tool_choice=choice, stop=["END"]))
    assert done.body["choices"][0]["message"]["tool_calls"]
    sent = tool_calls(xpay)[0]["params"]["arguments"]["input"]
    assert isinstance(sent["messages"], str) and json.loads(sent["messages"])[0]["content"] == "Weather?"
    assert isinstance(sent["tools"], str) and isinstance(sent["stop"], str) and isinstance(sent["tool_choice"], str)
    assert len(tool_calls(xpay, "xpay_details")) == 1
    await a.complete(ROUTE, chat())
    assert len(tool_calls(xpay, "xpay_details")) == 1  # the schema is asked once


@pytest.mark.parametrize(("json_response", "stateless"), [(True, False), (False, False), (True, True), (False, True)])
async def test_transport_modes(http, xpay, json_response, stateless):
    xpay.configure(json_response=json_response, stateless_http=stateless)
    a = adapter(http, xpay)
    done = await a.complete(ROUTE, chat())
    assert done.evidence.receipt_usd == Decimal("0.01")
    assert (a.mcp.session_id is None) is stateless
    await a.complete(ROUTE, chat("again"))
    assert a.mcp.generation == 1
    await a.aclose()


async def test_expired_session_is_reopened_once(http, xpay):
    a = adapter(http, xpay)
    await a.complete(ROUTE, chat())
    old = a.mcp.session_id
    assert xpay.control.post("/expire_sessions").json()["expired"] >= 1
    done = await a.complete(ROUTE, chat("after expiry"))
    assert done.evidence.balance_usd == Decimal("4.98")
    assert a.mcp.generation == 2 and a.mcp.session_id not in (None, old)
    methods = [r["body"].get("method") for r in xpay.requests() if isinstance(r["body"], dict)]
    assert methods.count("initialize") == 2


async def test_concurrent_callers_share_one_initialize(http, xpay):
    a = adapter(http, xpay)
    results = await asyncio.gather(*(a.complete(ROUTE, chat(f"q{i}")) for i in range(5)))
    assert len(results) == 5
    methods = [r["body"].get("method") for r in xpay.requests() if isinstance(r["body"], dict)]
    assert methods.count("initialize") == 1 and methods.count("notifications/initialized") == 1


@pytest.mark.parametrize("mode", ["result", "jsonrpc", "http"])
async def test_balance_exhaustion_in_every_placement(http, xpay, mode):
    xpay.configure(error_mode=mode)
    xpay.control.post("/balance", json={"balance": "0.01"}).raise_for_status()
    a = adapter(http, xpay)
    await a.complete(ROUTE, chat())
    assert a.balance == Decimal("0.00")
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat("one more"))
    assert caught.value.kind is ErrorKind.INSUFFICIENT_BALANCE
    assert caught.value.upstream_status == (402 if mode == "http" else None)


@pytest.mark.parametrize("mode", ["result", "jsonrpc", "http"])
async def test_spending_limit_in_every_placement(http, xpay, mode):
    xpay.configure(error_mode=mode)
    xpay.control.post("/balance", json={"spending_limit": "0.01"}).raise_for_status()
    a = adapter(http, xpay)
    await a.complete(ROUTE, chat())
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat("over the limit"))
    assert caught.value.kind is ErrorKind.SPENDING_LIMIT


@pytest.mark.parametrize("mode", ["result", "jsonrpc", "http"])
async def test_upstream_errors_are_not_charged_and_split_client_from_server(http, xpay, mode):
    xpay.configure(error_mode=mode)
    a = adapter(http, xpay)
    bad = chat(response_format={"type": "json_schema", "json_schema": {"name": "", "schema": {}}})
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, bad)
    assert caught.value.kind is ErrorKind.INVALID_REQUEST
    assert "json_schema.name" in caught.value.message
    xpay.control.post("/upstream/faults", json={"fault": "status:503", "times": 1}).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.UPSTREAM_SERVER
    xpay.control.post("/upstream/faults", json={"fault": "status:500:object", "times": 1}).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.UPSTREAM_SERVER
    assert xpay.control.get("/balance").json()["balance"] == "5.00"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(402, ErrorKind.INSUFFICIENT_BALANCE), (403, ErrorKind.SPENDING_LIMIT), (429, ErrorKind.RATE_LIMITED),
     (500, ErrorKind.UPSTREAM_SERVER), (502, ErrorKind.UPSTREAM_SERVER), (413, ErrorKind.PAYLOAD_TOO_LARGE)],
)
async def test_http_status_faults(http, xpay, status, kind):
    a = adapter(http, xpay)
    await a.complete(ROUTE, chat())  # session and schema in place
    spec = f"status:{status}" + (",retry_after:4" if status == 429 else "")
    xpay.control.post("/faults", json={"match": {"tool": "xpay_run"}, "fault": spec, "times": 1}).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is kind and caught.value.upstream_status == status
    if status == 429:
        assert caught.value.retry_after == 4
    assert (await a.complete(ROUTE, chat())).evidence.receipt_usd == Decimal("0.01")


async def test_wrong_key_is_operator_auth_and_never_leaks(http, xpay):
    a = adapter(http, xpay, key="xpay_sk_wrong_secret")
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.OPERATOR_AUTH
    assert "xpay_sk_wrong_secret" not in str(caught.value) and "xpay_sk_wrong_secret" not in a.mcp.redacted_url


@pytest.mark.parametrize("mode", ["result", "jsonrpc", "http"])
async def test_server_rate_limit_in_every_placement(http, xpay, mode):
    xpay.configure(error_mode=mode, rpm=2)
    a = adapter(http, xpay, rpm=100)
    await a.complete(ROUTE, chat())  # xpay_details + xpay_run: the server's two
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.RATE_LIMITED and caught.value.retry_after and caught.value.retry_after > 0


async def test_client_side_limits_never_provoke_a_server_429(http, xpay):
    xpay.configure(rpm=3, error_mode="http")
    a = adapter(http, xpay, rpm=3)
    await a.complete(ROUTE, chat())
    await a.complete(ROUTE, chat("second"))
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat("third"))
    assert caught.value.kind is ErrorKind.RATE_LIMITED and caught.value.upstream_status is None
    assert 55 < caught.value.retry_after <= 61
    assert len(tool_calls(xpay)) == 2  # the third never reached xpay

    xpay.reset()
    xpay.configure(concurrency=2, latency_ms=300, error_mode="http")
    b = adapter(http, xpay, concurrency=2)
    await b.complete(ROUTE, chat())
    outcomes = await asyncio.gather(*(b.complete(ROUTE, chat(f"c{i}")) for i in range(4)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, UpstreamError)]
    assert len(refused) == 2 and all(e.kind is ErrorKind.RATE_LIMITED and e.upstream_status is None for e in refused)
    assert b.limiter.in_flight == 0


async def test_timeout_and_connection_refused(http, xpay):
    a = adapter(http, xpay, timeouts=Timeouts(connect=1, first_byte=5, total=0.4))
    await a.complete(ROUTE, chat())
    # A hang that ends when the client gives up, so nothing of this call outlives the test.
    fault = {"match": {"tool": "xpay_run"}, "fault": "timeout", "times": 1}
    xpay.control.post("/faults", json=fault).raise_for_status()
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.TIMEOUT and a.limiter.in_flight == 0
    sock = socket.socket()  # a port that was free a moment ago refuses connections
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    closed = XpayAdapter(http, f"http://127.0.0.1:{port}/mcp", KEY)
    with pytest.raises(UpstreamError) as caught:
        await closed.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.CONNECT


@pytest.mark.parametrize(
    "knobs",
    [{"receipt_as_separate_block": True}, {"structured_content": True}, {"tool_names": "prefixed"},
     {"tool_names": "bare"}, {"stream_input": "sse_text"}],
)
async def test_answer_variants(http, xpay, knobs):
    xpay.configure(**knobs)
    a = adapter(http, xpay)
    done = await a.complete(ROUTE, chat(stream=True))
    assert done.body["choices"][0]["message"]["content"]
    assert done.evidence.receipt_usd == Decimal("0.01") and done.evidence.balance_usd == Decimal("4.99")


async def test_unknown_tool_and_balance_check(http, xpay):
    a = XpayAdapter(http, xpay.url + "/mcp", KEY, tool="no_such_tool")
    with pytest.raises(UpstreamError) as caught:
        await a.complete(ROUTE, chat())
    assert caught.value.kind is ErrorKind.PROTOCOL
    b = adapter(http, xpay)
    assert await b.fetch_balance() == Decimal("5.00")
    xpay.configure(balance_format="json")
    xpay.control.post("/balance", json={"balance": "2.50"})
    assert await b.fetch_balance() == Decimal("2.50") == b.balance


async def test_official_sdk_client_works_against_the_standin(xpay):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(f"{xpay.url}/mcp?key={KEY}") as (read, write, _), \
            ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == {"xpay_discover", "xpay_details", "xpay_run", "xpay_balance"}
            found = await session.call_tool("xpay_discover", {"query": "chat completions"})
            assert "baseten_chat_completions" in found.content[0].text
            result = await session.call_tool("xpay_run", {"tool": "baseten_chat_completions", "input": chat()})
            assert not result.isError
            assert result.content[0].text.endswith("Cost: $0.01 | Balance: $4.99 | xpay✦")
            missing = await session.call_tool("xpay_run", {"tool": "nope", "input": chat()})
            assert missing.isError and missing.content[0].text == "Tool not found: nope"
