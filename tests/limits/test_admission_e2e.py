"""Budgets and rate limits through live gateways, driven by the official openai client."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import openai
import pytest

from tests.conftest import LiveGateway
from tests.support import acreate_tenant_with_key, async_openai_clients, fetch, wait_for_rows

MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Say hello."}]
PINNED = {"provider": {"only": ["baseten"]}}


async def add_budget(database_url: str, tenant_id, limit: str, *, hard: bool = True, period: str = "month") -> None:
    await fetch(database_url,
                "INSERT INTO budgets (id, tenant_id, period, limit_usd, hard) VALUES ($1, $2, $3, $4, $5)",
                uuid.uuid4(), tenant_id, period, Decimal(limit), hard)


@pytest.fixture(scope="module")
def second_gateway(standins, database_url):
    gw = LiveGateway(standins, database_url)
    yield gw
    gw.stop()


async def test_budget_race_across_two_gateways_never_overshoots(gateway, second_gateway, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    # Each request's worst case is max_tokens=100 output + prompt at gpt-oss prices (~0.00005 USD);
    # the budget admits some of the 60 concurrent requests and must never be passed.
    limit = Decimal("0.0004")
    await add_budget(database_url, tenant.tenant_id, str(limit))

    async def one(client, i: int):
        try:
            r = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=HELLO, max_tokens=100, extra_body=PINNED)
            return "ok", r.headers
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.headers

    async with async_openai_clients([g.url + "/v1" for g in (gateway, second_gateway)], tenant.key) as clients:
        results = await asyncio.gather(*(one(clients[i % 2], i) for i in range(60)))
    served = [r for r in results if r[0] == "ok"]
    refused = [r for r in results if r[0] == 402]
    assert served and refused and len(served) + len(refused) == 60
    assert all(h["x-should-retry"] == "false" for _, h in refused)
    rows = await wait_for_rows(database_url, "SELECT provider_cost_usd FROM usage_events WHERE tenant_id = $1",
                               len(served), tenant.tenant_id)
    spent = sum(r["provider_cost_usd"] for r in rows)
    assert len(rows) == len(served)
    assert spent <= limit


async def test_hard_budget_refuses_with_insufficient_quota(client, gateway, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    await add_budget(database_url, tenant.tenant_id, "0.00000001")
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=2)
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model=MODEL, messages=HELLO, extra_body=PINNED)
    assert info.value.status_code == 402
    assert info.value.body["type"] == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    rows = await fetch(database_url, "SELECT 1 FROM usage_events WHERE tenant_id = $1", tenant.tenant_id)
    assert rows == []  # refused before any upstream call


async def test_soft_budget_serves_and_flags(gateway, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    await add_budget(database_url, tenant.tenant_id, "0.00000001", hard=False, period="day")
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, extra_body=PINNED)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-switchyard-budget-warning"] == "soft budget exceeded"


async def test_requests_per_minute_limit(gateway, database_url):
    tenant = await acreate_tenant_with_key(database_url, rpm=3)
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0)
    for expected_remaining in (2, 1, 0):
        raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, extra_body=PINNED)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert int(raw.headers["x-ratelimit-remaining-requests"]) <= expected_remaining + 1
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model=MODEL, messages=HELLO, extra_body=PINNED)
    headers = info.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"


async def test_tokens_per_minute_limit(gateway, database_url):
    tenant = await acreate_tenant_with_key(database_url, tpm=200)
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        # Worst case (prompt + 500 output tokens) cannot fit in 200 tokens a minute.
        c.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=500, extra_body=PINNED)
    raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, max_tokens=50, extra_body=PINNED)
    assert raw.headers["x-ratelimit-limit-tokens"] == "200"
