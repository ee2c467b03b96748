"""Prometheus and the ledger tell the same story: over a tenant's traffic, the cost and token
counters move by exactly what the usage rows in Postgres add up to."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

import httpx
import openai
import pytest

from tests.conftest import LiveGateway
from tests.observability.prometheus_helpers import total
from tests.support import create_tenant_with_key, fetch, wait_for_rows

HELLO = [{"role": "user", "content": "Say hello."}]
MARKUP = "0.25"
# (model, provider preferences, stream): direct routes, both marketplaces (dearer than direct for
# these small calls, so overspend moves too), a reasoning model, and the planner's own choice.
TRAFFIC = [
    ("openai/gpt-oss-120b", {"only": ["baseten"]}, False),
    ("openai/gpt-oss-120b", {"only": ["baseten"]}, True),
    ("deepseek-ai/DeepSeek-V4-Pro", {"only": ["baseten"]}, False),
    ("deepseek-ai/DeepSeek-V4-Pro", {"only": ["baseten"]}, True),
    ("zai-org/GLM-5.2", {"only": ["baseten"]}, True),
    ("openai/gpt-oss-120b", {"only": ["xpay"]}, False),
    ("openai/gpt-oss-120b", {"only": ["orthogonal"]}, False),
    ("openai/gpt-oss-120b", None, False),
]
DIRECTIONS = {"prompt": "prompt_tokens", "completion": "completion_tokens", "reasoning": "reasoning_tokens",
              "cached": "cached_tokens"}


@pytest.fixture(scope="module")
def metered_gateway(standins, database_url):
    """Its own gateway and so its own Metrics: no other test's traffic in these counters."""
    gw = LiveGateway(standins, database_url)
    yield gw
    gw.stop()


def _send(client: openai.OpenAI, model: str, provider: dict | None, stream: bool,
          extra: dict | None = None) -> int:
    """One request, read to the end; returns the attempts it took (one usage row each)."""
    body = {**({"provider": provider} if provider else {}), **(extra or {})}
    if stream:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=HELLO, stream=True, stream_options={"include_usage": True}, extra_body=body)
        assert any(chunk.usage for chunk in raw.parse())
    else:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO, extra_body=body)
        assert raw.parse().choices
    return int(raw.headers["x-switchyard-attempts"])


def _close(a: float, b: Decimal | int) -> bool:
    # Counters are floats: summing many small Decimal amounts drifts in the last bits only.
    return math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-15)


def test_cost_and_token_counters_match_the_ledger(metered_gateway, standins, database_url):
    gw = metered_gateway
    tenant = create_tenant_with_key(database_url, "metrics-vs-ledger", markup=MARKUP)
    before = httpx.get(gw.url + "/metrics").text

    rows_expected = 0
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=tenant.key, max_retries=0, timeout=20) as client:
        for model, provider, stream in TRAFFIC:
            rows_expected += _send(client, model, provider, stream)
        # A failed first attempt is a usage row too (with whatever it cost: nothing, here).
        httpx.post(standins.servers["baseten"].url + "/__control/faults",
                   json={"match": {"path": "/v1/chat/completions"}, "fault": "status:503:string", "times": 1},
                   ).raise_for_status()
        attempts = _send(client, "openai/gpt-oss-120b", {"only": ["baseten"]}, False,
                         {"models": ["zai-org/GLM-5.2"]})
        assert attempts == 2
        rows_expected += attempts
    requests = len(TRAFFIC) + 1

    rows = asyncio.run(wait_for_rows(database_url, "SELECT * FROM usage_events WHERE tenant_id = $1",
                                     rows_expected, tenant.tenant_id))
    assert len(rows) == rows_expected
    after = httpx.get(gw.url + "/metrics").text

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    provider_cost = sum(r["provider_cost_usd"] for r in rows)
    billed = sum(r["billed_usd"] for r in rows)
    assert provider_cost > 0 and billed == provider_cost * (1 + Decimal(MARKUP))
    assert _close(delta("switchyard_cost_usd_total"), provider_cost)
    tenant_label = str(tenant.tenant_id)
    tenant_cost = "switchyard_tenant_cost_usd_total"
    assert _close(delta(tenant_cost, tenant=tenant_label, kind="provider"), provider_cost)
    assert _close(delta(tenant_cost, tenant=tenant_label, kind="billed"), billed)
    for front_end in {r["front_end"] for r in rows}:
        ledger = sum(r["provider_cost_usd"] for r in rows if r["front_end"] == front_end)
        assert _close(delta("switchyard_cost_usd_total", front_end=front_end), ledger), front_end

    for direction, column in DIRECTIONS.items():
        ledger = sum(r[column] for r in rows)
        assert delta("switchyard_tokens_total", direction=direction) == ledger, direction
    assert delta("switchyard_tokens_total", direction="prompt") > 0
    assert delta("switchyard_tokens_total", direction="completion") > 0

    assert delta("switchyard_requests_total") == requests
    assert delta("switchyard_upstream_attempts_total") == len(rows)
    assert delta("switchyard_upstream_attempts_total", outcome="ok") == sum(r["status"] == "ok" for r in rows)
    assert delta("switchyard_fallbacks_total") == 1


def test_savings_and_overspend_match_the_ledger(metered_gateway, database_url):
    """Net savings against Baseten direct, recomputed from the usage rows, equals savings minus
    overspend; a route dearer than direct must count as overspend, never fail the request."""
    gw = metered_gateway
    tenant = create_tenant_with_key(database_url, "savings-vs-ledger")
    before = httpx.get(gw.url + "/metrics").text
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=tenant.key, max_retries=0, timeout=20) as client:
        sent = [_send(client, "openai/gpt-oss-120b", {"only": [front_end]}, False)
                for front_end in ("baseten", "xpay", "orthogonal", "xpay")]
    rows = asyncio.run(wait_for_rows(database_url, "SELECT * FROM usage_events WHERE tenant_id = $1",
                                     sum(sent), tenant.tenant_id))
    assert len(rows) == sum(sent)
    after = httpx.get(gw.url + "/metrics").text

    catalog = gw.runtime.catalog
    saved = overspent = Decimal(0)
    for row in rows:
        direct = catalog.find_route("baseten", row["served_model"])
        if row["status"] != "ok" or row["estimated"] or direct is None or direct.pricing.kind != "per_token":
            continue
        baseline = direct.pricing.token_cost(row["prompt_tokens"], row["completion_tokens"],
                                             row["cached_tokens"])
        difference = baseline - row["provider_cost_usd"]
        if difference > 0:
            saved += difference
        else:
            overspent -= difference
    assert overspent > 0, "the flat-priced marketplace calls should cost more than direct"
    def delta(name: str) -> float:
        return total(after, name) - total(before, name)

    savings, overspend = delta("switchyard_savings_usd_total"), delta("switchyard_overspend_usd_total")
    assert _close(savings, saved) and _close(overspend, overspent)
    # Sanity on the ledger side itself: every request's rows are there.
    requests = asyncio.run(fetch(database_url,
                                 "SELECT DISTINCT request_id FROM usage_events WHERE tenant_id = $1",
                                 tenant.tenant_id))
    assert len(requests) == len(sent)
