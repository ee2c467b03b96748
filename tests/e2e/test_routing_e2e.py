"""Routing as a client sees it: cheapest route per request, fallbacks, circuits, cut streams."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from service.catalog.loader import load_catalog
from tests.conftest import LiveGateway
from tests.support import create_tenant_with_key, wait_for_rows

CATALOG = load_catalog()
HELLO = [{"role": "user", "content": "Say hello."}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def fault(standins, spec: str, *, model: str | None = None, times: int = 1) -> None:
    match = {"path": "/v1/chat/completions", **({"model": model} if model else {})}
    httpx.post(standins.servers["baseten"].url + "/__control/faults",
               json={"match": match, "fault": spec, "times": times}).raise_for_status()


def long_prompt(tokens: int) -> list[dict]:
    # The gateway estimates a quarter of the JSON's characters; the stand-ins count the same way.
    return [{"role": "user", "content": "lorem ipsum " * (tokens * 4 // 12)}]


def rows_for(database_url: str, request_id: str, expected: int):
    return asyncio.run(wait_for_rows(
        database_url, "SELECT * FROM usage_events WHERE request_id = $1 ORDER BY attempt", expected, request_id))


def test_long_prompt_to_kimi_goes_through_xpay_short_one_direct(client, gateway):
    long = client.chat.completions.with_raw_response.create(model="moonshotai/Kimi-K2.5", messages=long_prompt(40_000))
    assert long.headers["x-switchyard-route"] == "xpay:moonshotai/Kimi-K2.5"
    assert long.parse().usage.model_extra["cost"] == pytest.approx(0.01)
    short = client.chat.completions.with_raw_response.create(model="moonshotai/Kimi-K2.5", messages=HELLO)
    assert short.headers["x-switchyard-route"] == "baseten:moonshotai/Kimi-K2.5"
    rows = rows_for(gateway.database_url, long.headers["x-request-id"], 1)
    assert rows[0]["cost_source"] == "receipt" and str(rows[0]["provider_cost_usd"]) == "0.0100000000"


def test_quote_explains_the_choice_without_calling_upstreams(client, gateway, tenant, standins):
    before = httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"]
    r = httpx.post(gateway.url + "/v1/quote", headers={"Authorization": f"Bearer {tenant.key}"},
                   json={"model": "moonshotai/Kimi-K2.5", "messages": long_prompt(40_000)})
    plan = r.json()
    assert plan["routes"][0]["route"] == "xpay:moonshotai/Kimi-K2.5"
    costs = [float(x["cost_usd"]["expected"]) for x in plan["routes"]]
    assert costs == sorted(costs)
    after = httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"]
    assert len(after) == len(before)  # no Baseten call; Orthogonal only for a dry run


def test_image_goes_to_a_vision_model(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}])
    served = raw.headers["x-switchyard-model"]
    assert CATALOG.models[served].features.vision


def test_json_schema_never_lands_on_a_model_without_structured_outputs(client):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    for model in ("auto", "budget"):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=HELLO,
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}})
        assert CATALOG.models[raw.headers["x-switchyard-model"]].features.structured_outputs
        assert isinstance(json.loads(raw.parse().choices[0].message.content)["ok"], bool)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="deepseek-ai/DeepSeek-V3.1", messages=HELLO,
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "r", "schema": schema}})
    assert info.value.body["code"] == "unsupported_feature"


def test_context_too_long_names_the_largest_context(client):
    with pytest.raises(openai.BadRequestError) as info:
        # Surely too long (at least ~136,000 tokens less the margin); one that may fit is tried.
        client.chat.completions.create(model="openai/gpt-oss-120b", messages=long_prompt(150_000))
    assert info.value.body["code"] == "context_length_exceeded"
    assert "128072" in info.value.body["message"]


def test_cost_ceiling_excluding_every_route_is_a_402(client):
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="moonshotai/Kimi-K3", messages=HELLO,
                                       extra_body={"provider": {"max_cost_usd": 0.0000001}})
    assert info.value.status_code == 402 and info.value.body["code"] == "max_cost_exceeded"


def test_failing_route_falls_back_and_every_attempt_is_metered(client, gateway, standins):
    fault(standins, "status:503:string", model="openai/gpt-oss-120b")
    raw = client.chat.completions.with_raw_response.create(model="openai/gpt-oss-120b", messages=HELLO)
    assert raw.headers["x-switchyard-attempts"] == "2"
    assert not raw.headers["x-switchyard-route"].startswith("baseten:")
    rows = rows_for(gateway.database_url, raw.headers["x-request-id"], 2)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "error"), (2, "ok")]
    assert rows[0]["error_code"] == "upstream_server" and rows[0]["http_status"] == 503


def test_circuit_opens_and_recovers(standins, database_url):
    gw = LiveGateway(standins, database_url, SWITCHYARD_BREAKER_FAILURES="2", SWITCHYARD_BREAKER_COOLDOWN_SECONDS="1")
    try:
        tenant = create_tenant_with_key(database_url)
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=tenant.key, max_retries=0)
        model = "deepseek-ai/DeepSeek-V3-0324"
        route = f"baseten:{model}"
        fault(standins, "status:500:object", model=model, times=2)
        for _ in range(2):
            raw = c.chat.completions.with_raw_response.create(model=model, messages=HELLO)
            assert raw.headers["x-switchyard-attempts"] == "2"
        plan = httpx.post(gw.url + "/v1/quote", headers={"Authorization": f"Bearer {tenant.key}"},
                          json={"model": model, "messages": HELLO}).json()
        assert {"route": route, "code": "circuit_open"}.items() <= next(
            e for e in plan["excluded"] if e["route"] == route).items()
        raw = c.chat.completions.with_raw_response.create(model=model, messages=HELLO)
        assert raw.headers["x-switchyard-attempts"] == "1" and raw.headers["x-switchyard-route"] != route
        time.sleep(1.2)  # the cool-down passes: half-open, one probe goes through and succeeds
        raw = c.chat.completions.with_raw_response.create(model=model, messages=HELLO)
        assert raw.headers["x-switchyard-route"] == route
        assert gw.runtime.health.state(route) == 0
    finally:
        gw.stop()


def test_failure_mid_stream_ends_with_an_error_event_and_is_metered(client, gateway, standins):
    fault(standins, "error_event_after_chunks:4", model="zai-org/GLM-5.2")
    stream = client.chat.completions.with_raw_response.create(
        model="zai-org/GLM-5.2", messages=HELLO, stream=True, extra_body={"provider": {"only": ["baseten"]}})
    request_id = stream.headers["x-request-id"]
    received = []
    with pytest.raises(openai.APIError):
        received.extend(stream.parse())
    assert len(received) >= 1
    rows = rows_for(gateway.database_url, request_id, 1)
    assert rows[0]["status"] == "error" and rows[0]["error_code"] == "stream_error"
    assert rows[0]["completion_tokens"] > 0 and rows[0]["provider_cost_usd"] > 0  # billed for what was generated


def test_client_disconnect_cancels_upstream_and_meters_partial_usage(gateway, tenant, standins):
    fault(standins, "inter_chunk_ms:100", model="deepseek-ai/DeepSeek-V4-Pro")
    started = time.monotonic()
    with httpx.Client(timeout=10) as http, http.stream(
        "POST", gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {tenant.key}"},
        json={"model": "deepseek-ai/DeepSeek-V4-Pro", "messages": HELLO, "stream": True,
              "provider": {"only": ["baseten"]}},
    ) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    rows = rows_for(gateway.database_url, request_id, 1)
    row = rows[0]
    assert row["client_disconnected"] is True
    assert row["completion_tokens"] > 0
    assert row["provider_cost_usd"] > 0
    # The upstream call stopped with the client, long before the ~3 s the whole stream takes.
    assert (row["ended_at"] - row["started_at"]).total_seconds() < 2.0
    assert time.monotonic() - started < 3.0
