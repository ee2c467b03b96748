"""Two production servers (granian, two workers each) over one Postgres stay exact together."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import openai
import pytest

from service.auth.keys import new_key
from tests.scale.serve_process import ServeProcess
from tests.support import acreate_tenant_with_key, async_openai_clients, fetch, wait_for_rows

HELLO = [{"role": "user", "content": "Say hello."}]
PINNED = {"provider": {"only": ["baseten"]}}
ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}


@pytest.fixture(scope="module")
def instances(standins, database_url):
    servers = [ServeProcess(standins, database_url, workers=2).start() for _ in range(2)]
    yield servers
    for s in servers:
        assert s.stop() == 0, s.log()[-2000:]


def clients(instances, key: str):
    return async_openai_clients([s.url + "/v1" for s in instances], key)


async def call(client: openai.AsyncOpenAI, **kw):
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="openai/gpt-oss-120b", messages=HELLO, extra_body=PINNED, **kw)
        return 200, raw.headers
    except openai.APIStatusError as exc:
        return exc.status_code, exc.response.headers


@pytest.mark.slow
async def test_budget_and_usage_totals_exact_across_instances(instances, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    limit = Decimal("0.0005")
    await fetch(database_url,
                "INSERT INTO budgets (id, tenant_id, period, limit_usd, hard) VALUES ($1, $2, 'month', $3, true)",
                uuid.uuid4(), tenant.tenant_id, limit)
    async with clients(instances, tenant.key) as cs:
        results = await asyncio.gather(*(call(cs[i % 2], max_tokens=100) for i in range(80)))
    served = [h for status, h in results if status == 200]
    assert served
    assert any(status == 402 for status, _ in results)
    assert all(status in (200, 402) for status, _ in results)
    rows = await wait_for_rows(database_url, "SELECT provider_cost_usd FROM usage_events WHERE tenant_id = $1",
                               len(served), tenant.tenant_id)
    assert len(rows) == len(served)
    ledger_total = sum(r["provider_cost_usd"] for r in rows)
    assert ledger_total == sum(Decimal(h["x-switchyard-cost-usd"]) for h in served)  # what clients were told
    assert ledger_total <= limit


@pytest.mark.slow
async def test_rate_limit_exact_across_instances(instances, database_url):
    now = datetime.now(UTC)
    if now.second > 45:  # keep the burst inside one minute window
        await asyncio.sleep(61 - now.second)
    tenant = await acreate_tenant_with_key(database_url, rpm=12)
    async with clients(instances, tenant.key) as cs:
        results = await asyncio.gather(*(call(cs[i % 2]) for i in range(40)))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(200) == 12
    assert statuses.count(429) == 28
    assert all("retry-after" in h for status, h in results if status == 429)


@pytest.mark.slow
async def test_revoked_key_refused_at_once_on_every_instance(instances, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    async with clients(instances, tenant.key) as cs:
        # Every worker of both instances has the key cached.
        assert all(s == 200 for s, _ in await asyncio.gather(*(call(cs[i % 2]) for i in range(8))))
        r = httpx.delete(instances[0].url + f"/admin/keys/{tenant.key_prefix}", headers=ADMIN)
        assert r.status_code == 200
        started = time.monotonic()
        results = await asyncio.gather(*(call(cs[i % 2]) for i in range(8)))
    assert [s for s, _ in results] == [401] * 8
    assert time.monotonic() - started < 2


@pytest.mark.slow
async def test_new_key_accepted_at_once_on_every_instance_during_a_flood_of_unknown_keys(instances, database_url):
    """Random keys exhaust every worker's budget of lookups for unknown prefixes; a key created on one
    instance still works on the other at once: the database announced it when it was committed."""
    tenant = await acreate_tenant_with_key(database_url)
    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        flood = await asyncio.gather(*(
            http.get(instances[i % 2].url + "/v1/models", headers={"Authorization": f"Bearer {new_key()}"})
            for i in range(600)))
        assert {r.status_code for r in flood} == {401}
        created = await http.post(instances[0].url + f"/admin/tenants/{tenant.tenant_id}/keys", headers=ADMIN,
                                  json={})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        answers = await asyncio.gather(*(
            http.get(instances[i % 2].url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
            for i in range(8)))
    assert [r.status_code for r in answers] == [200] * 8
