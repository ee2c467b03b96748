"""Money through a live gateway and the official openai client: what a tenant is told is what it is
billed, budgets are spent in billed amounts and never passed, and the paths reviewers found broken."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit

import asyncpg
import httpx
import openai
import pytest

from service.catalog.loader import default_catalog_text
from service.catalog.sync import record_version
from tests.conftest import LiveGateway
from tests.reliability.fault_control import arm
from tests.reliability.tcp_proxy import CuttableProxy
from tests.support import acreate_tenant_with_key, async_openai_clients, fetch, wait_for_rows

MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Say hello."}]
BASETEN = {"provider": {"only": ["baseten"]}}
ROWS = "SELECT * FROM usage_events WHERE tenant_id = $1 ORDER BY started_at, attempt"


async def add_budget(database_url: str, tenant_id, limit: str, *, hard: bool = True, period: str = "day") -> None:
    await fetch(database_url,
                "INSERT INTO budgets (id, tenant_id, period, limit_usd, hard) VALUES ($1, $2, $3, $4, $5)",
                uuid.uuid4(), tenant_id, period, Decimal(limit), hard)


def billed(provider: Decimal, markup: str) -> Decimal:
    return (provider * (1 + Decimal(markup))).quantize(Decimal("1E-10"), rounding=ROUND_HALF_UP)


async def test_markup_is_billed_told_and_budgeted_the_same(gateway, database_url):
    """Measured on the old main: markup 0.5 and a $0.05 daily hard budget were billed $0.0602."""
    tenant = await acreate_tenant_with_key(database_url, markup="0.5")
    limit = Decimal("0.0015")
    await add_budget(database_url, tenant.tenant_id, str(limit))
    told: list[Decimal] = []
    refusals: list[tuple[int, str]] = []  # (status, x-should-retry)
    async with async_openai_clients([gateway.url + "/v1"], tenant.key) as (client,):
        for _ in range(60):
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=HELLO, max_tokens=400, extra_body=BASETEN)
            except openai.APIStatusError as exc:
                refusals.append((exc.status_code, exc.response.headers["x-should-retry"]))
                continue
            answer = raw.parse()
            cost = Decimal(repr(answer.usage.model_extra["cost"]))
            assert cost == Decimal(raw.headers["x-switchyard-cost-usd"])
            told.append(cost)
    assert told and refusals
    assert set(refusals) == {(402, "false")}
    rows = await wait_for_rows(database_url, ROWS, len(told), tenant.tenant_id)
    assert [r["billed_usd"] for r in rows] == told
    for row in rows:
        assert row["billed_usd"] == billed(row["provider_cost_usd"], "0.5")
    assert sum(told) <= limit
    usage = httpx.get(gateway.url + "/v1/usage", headers={"Authorization": f"Bearer {tenant.key}"}).json()
    assert Decimal(usage["total"]["cost_usd"]) == sum(told)


async def test_output_bound_sent_upstream_is_what_the_reservation_assumed(gateway, standins, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    async with async_openai_clients([gateway.url + "/v1"], tenant.key) as (client,):
        await client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=BASETEN)
        await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=77, extra_body=BASETEN)
    log = httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"]
    sent = [r["body"] for r in log if r["path"].endswith("/chat/completions")][-2:]
    assert sent[0]["max_tokens"] == 4096  # none given: the bound the budget reserved for
    assert sent[1]["max_tokens"] == 77


async def test_a_stream_ending_after_its_finish_and_usage_is_complete(gateway, standins, database_url):
    """A real GLM-5.2 stream ended its body after the finish chunk with no [DONE]; 12 of them opened the
    route's circuit on the old main."""
    tenant = await acreate_tenant_with_key(database_url)
    arm(standins, "end_after_finish", model=MODEL, times=14)
    async with async_openai_clients([gateway.url + "/v1"], tenant.key) as (client,):
        for _ in range(14):
            stream = await client.chat.completions.create(
                model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}, extra_body=BASETEN)
            chunks = [c async for c in stream]
            assert chunks[-1].usage is not None and chunks[-1].usage.model_extra["cost"] > 0
            assert not any(getattr(c, "error", None) for c in chunks)
        answer = await client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=BASETEN)
    assert answer.choices[0].message.content
    rows = await wait_for_rows(database_url, ROWS, 15, tenant.tenant_id)
    assert [r["status"] for r in rows] == ["ok"] * 15
    assert gateway.runtime.health.state(f"baseten:{MODEL}") == 0


async def test_an_adapter_bug_releases_the_marketplace_slot_and_is_metered(gateway, database_url, monkeypatch):
    """On the old main, 10 exceptions that were not UpstreamErrors left xpay 'at capacity' for good."""
    tenant = await acreate_tenant_with_key(database_url)
    xpay = gateway.runtime.adapters["xpay"]
    calls = {"n": 0}

    async def broken(*_args, **_kwargs):
        calls["n"] += 1
        raise ValueError("a bug below the adapter")

    monkeypatch.setattr(xpay, "complete", broken)
    only_xpay = {"provider": {"only": ["xpay"]}}
    async with async_openai_clients([gateway.url + "/v1"], tenant.key) as (client,):
        for _ in range(12):
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=only_xpay)
            assert caught.value.status_code in (502, 503)
        monkeypatch.undo()
        gateway.runtime.health.reset()
        answer = await client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=only_xpay)
    assert answer.choices[0].message.content
    assert gateway.runtime.capacity.group("xpay").inflight == 0
    rows = await wait_for_rows(database_url, ROWS, calls["n"] + 1, tenant.tenant_id)
    assert [r["error_code"] for r in rows[:-1]] == ["internal"] * calls["n"]
    assert rows[-1]["status"] == "ok"


async def test_a_hard_budget_that_cannot_be_checked_refuses_with_503(standins, database_url):
    """Measured on the old main: with no cached budgets and Postgres down, 40 of 40 requests were
    served, $0.00076 spent against a $0.0002 hard limit."""
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname, parts.port or 5432).start()
    proxied = database_url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}")
    gw = LiveGateway(standins, proxied)
    try:
        hard = await acreate_tenant_with_key(database_url)
        await add_budget(database_url, hard.tenant_id, "0.0002")
        soft = await acreate_tenant_with_key(database_url)
        await add_budget(database_url, soft.tenant_id, "0.0002", hard=False)
        async with async_openai_clients([gw.url + "/v1"], hard.key) as (h,), \
                async_openai_clients([gw.url + "/v1"], soft.key) as (s,):
            # The keys are known to this process (the first request leases a slice of the budget).
            await h.models.list()
            await s.models.list()
            proxy.cut()
            statuses = []
            unavailable_codes = []
            for _ in range(40):
                try:
                    await h.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=50, extra_body=BASETEN)
                    statuses.append(200)
                except openai.APIStatusError as exc:
                    statuses.append(exc.status_code)
                    if exc.status_code == 503:
                        unavailable_codes.append(exc.body["code"])
            served_soft = await s.chat.completions.with_raw_response.create(
                model=MODEL, messages=HELLO, max_tokens=50, extra_body=BASETEN)
            assert served_soft.headers["x-switchyard-budget-warning"] == "soft budget exceeded"
            proxy.restore()
        assert 503 in statuses
        assert set(unavailable_codes) == {"budget_unavailable"}
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            rows = await fetch(database_url, ROWS, hard.tenant_id)
            spent = sum((r["billed_usd"] for r in rows), Decimal(0))
            if len(rows) >= statuses.count(200) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert len(rows) == statuses.count(200)
        assert spent <= Decimal("0.0002")
    finally:
        gw.stop()
        proxy.stop()


async def test_a_replica_that_connects_late_bills_on_the_newest_prices(standins, database_url):
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname, parts.port or 5432).start()
    proxied = database_url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}")
    raw = json.loads(default_catalog_text())
    for route in raw["routes"]:
        if route["model"] == MODEL and route["front_end"] == "baseten":
            route["pricing"]["input_per_mtok"] = "7.00"
    raw["note"] = f"test-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        version = await record_version(conn, raw, datetime.now(UTC))
    finally:
        await conn.close()
    proxy.cut()
    gw = LiveGateway(standins, proxied)
    try:
        assert gw.runtime.pool is None  # started without its database
        proxy.restore()
        deadline = asyncio.get_running_loop().time() + 20
        while gw.runtime.catalog.version != version and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        assert gw.runtime.catalog.version == version
        route = gw.runtime.catalog.find_route("baseten", MODEL)
        assert route is not None and route.pricing.input_per_mtok == Decimal("7.00")
    finally:
        gw.stop()
        proxy.stop()
        # Later tests in this session read the packaged catalog's prices.
        await fetch(database_url, "DELETE FROM price_versions WHERE version = $1", version)


async def test_two_gateways_share_one_hard_budget_in_billed_amounts(gateway, standins, database_url):
    second = LiveGateway(standins, database_url)
    try:
        tenant = await acreate_tenant_with_key(database_url, markup="1")
        limit = Decimal("0.0006")
        await add_budget(database_url, tenant.tenant_id, str(limit))

        async def one(client):
            try:
                await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=100, extra_body=BASETEN)
                return 200
            except openai.APIStatusError as exc:
                return exc.status_code

        async with async_openai_clients([gateway.url + "/v1", second.url + "/v1"], tenant.key) as clients:
            results = await asyncio.gather(*(one(clients[i % 2]) for i in range(60)))
        assert results.count(200) and results.count(402)
        rows = await wait_for_rows(database_url, ROWS, results.count(200), tenant.tenant_id)
        assert len(rows) == results.count(200)
        assert sum(r["billed_usd"] for r in rows) <= limit
    finally:
        second.stop()


async def test_savings_against_always_direct_are_what_the_tenant_sees(gateway, database_url):
    """A long prompt is cheaper at xpay's flat fee than at Kimi's per-token price: the row records what
    Baseten direct would have billed, and /v1/usage shows the difference as the tenant's saving."""
    tenant = await acreate_tenant_with_key(database_url, markup="0.3")
    long_prompt = [{"role": "user", "content": "Summarize: " + "lorem ipsum dolor sit amet " * 6000}]
    async with async_openai_clients([gateway.url + "/v1"], tenant.key) as (client,):
        raw = await client.chat.completions.with_raw_response.create(
            model="moonshotai/Kimi-K2.5", messages=long_prompt, max_tokens=200)
    assert raw.headers["x-switchyard-route"].startswith("xpay:")
    rows = await wait_for_rows(database_url, ROWS, 1, tenant.tenant_id)
    row = rows[0]
    assert row["direct_billed_usd"] > row["billed_usd"] == billed(Decimal("0.01"), "0.3")
    usage = httpx.get(gateway.url + "/v1/usage", headers={"Authorization": f"Bearer {tenant.key}"}).json()
    assert Decimal(usage["total"]["cost_usd"]) == row["billed_usd"]
    assert Decimal(usage["total"]["direct_cost_usd"]) == row["direct_billed_usd"]
    assert Decimal(usage["total"]["savings_usd"]) == row["direct_billed_usd"] - row["billed_usd"] > 0
