"""xpay as a pool of keys (XPAY_API_KEYS), each with its own limits: calls spread over the keys,
the pool's capacity is the sum of theirs, a full pool refuses the route (never xpay's 429), and the
capacity and flat-fee price series say so."""

from __future__ import annotations

import asyncio

import httpx
import openai

from tests.conftest import LiveGateway
from tests.support import acreate_tenant_with_key, async_openai_clients, wait_for_rows

MODEL = "openai/gpt-oss-120b"
XPAY_ONLY = {"provider": {"only": ["xpay"]}}


async def test_a_pool_of_keys_adds_their_capacity_and_refuses_beyond_it(standins, database_url):
    key = standins.api_keys["xpay"]
    gw = LiveGateway(standins, database_url, XPAY_API_KEYS=f"{key}:60:1,{key}:60:1")
    xpay_control = standins.servers["xpay"].url + "/__control"
    try:
        httpx.post(xpay_control + "/config", json={"latency_ms": 600}).raise_for_status()
        tenant = await acreate_tenant_with_key(database_url)
        async with async_openai_clients([gw.url + "/v1"], tenant.key) as (client,):
            async def one() -> int:
                try:
                    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                         extra_body=XPAY_ONLY)
                    return 200
                except openai.APIStatusError as exc:
                    return exc.status_code

            first = await asyncio.gather(one(), one())
            assert first == [200, 200]  # two keys, one slot each: both at once
            third = await asyncio.gather(one(), one(), one())
            assert sorted(third) == [200, 200, 503]  # the pool is full: refused, xpay never asked
        assert gw.runtime.capacity.keys("xpay")[0].inflight == gw.runtime.capacity.keys("xpay")[1].inflight == 0
        rows = await wait_for_rows(database_url, "SELECT * FROM usage_events WHERE tenant_id = $1", 4,
                                   tenant.tenant_id)
        assert len(rows) == 4 and {r["front_end"] for r in rows} == {"xpay"}
        text = httpx.get(gw.url + "/metrics").text
        assert 'switchyard_capacity_slots{group="xpay",state="limit"} 2.0' in text
        assert 'switchyard_capacity_refusals_total{front_end="xpay"}' in text
        assert 'switchyard_flat_fee_price_usd{group="xpay",kind="per_call"}' in text
        assert 'switchyard_flat_fee_decisions_total{decision="admitted",group="xpay"}' in text
    finally:
        httpx.post(xpay_control + "/config", json={"latency_ms": 0})
        gw.stop()
