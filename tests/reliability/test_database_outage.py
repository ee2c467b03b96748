"""Postgres goes away under load and comes back: every request served, every attempt in the ledger once."""

from __future__ import annotations

import asyncio
import inspect
from urllib.parse import urlsplit

import openai
import pytest

from tests.conftest import LiveGateway
from tests.reliability.tcp_proxy import CuttableProxy
from tests.support import acreate_tenant_with_key, fetch

HELLO = [{"role": "user", "content": "Say hello."}]


async def test_outage_under_load_loses_no_usage_row(standins, database_url):
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname, parts.port or 5432).start()
    proxied = database_url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}")
    gw = LiveGateway(standins, proxied, USAGE_FLUSH_SECONDS="0.05")
    client = None
    try:
        tenant = await acreate_tenant_with_key(database_url)
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=tenant.key, max_retries=0, timeout=20)
        # Warm the key cache and the budget cache while the database is there.
        await client.chat.completions.create(model="openai/gpt-oss-120b", messages=HELLO,
                                             extra_body={"provider": {"only": ["baseten"]}})
        request_ids: list[str] = []
        failures: list[Exception] = []

        async def load(n: int) -> None:
            for i in range(n):
                stream = i % 2 == 1
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="openai/gpt-oss-120b", messages=HELLO, stream=stream,
                        extra_body={"provider": {"only": ["baseten"]}})
                    if stream:
                        parsed = raw.parse()
                        async for _ in (await parsed if inspect.isawaitable(parsed) else parsed):
                            pass
                    request_ids.append(raw.headers["x-request-id"])
                except Exception as exc:  # noqa: BLE001 - collected and asserted on
                    failures.append(exc)
                await asyncio.sleep(0.02)

        async def outage() -> None:
            await asyncio.sleep(0.5)
            proxy.cut()
            await asyncio.sleep(1.5)
            proxy.restore()

        await asyncio.gather(*(load(25) for _ in range(4)), outage())
        assert failures == []
        assert len(request_ids) == 100
        assert gw.runtime.ledger.spilled > 0  # the outage really hit the writer
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            rows = await fetch(database_url, "SELECT request_id, attempt FROM usage_events WHERE tenant_id = $1",
                               tenant.tenant_id)
            if len(rows) >= 101 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        keys = [(r["request_id"], r["attempt"]) for r in rows]
        assert len(keys) == len(set(keys)) == 101  # the warm-up plus 100: each exactly once
        assert set(request_ids) <= {r for r, _ in keys}
        daily = await fetch(database_url, "SELECT sum(attempts) AS n FROM usage_daily WHERE tenant_id = $1",
                            tenant.tenant_id)
        assert daily[0]["n"] == 101  # the rollup counted replayed rows once
    finally:
        if client is not None:
            await client.close()  # see tests.support.async_openai_clients
        gw.stop()
        proxy.stop()


async def test_an_unknown_key_during_an_outage_is_a_503_not_a_401(standins, database_url):
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname, parts.port or 5432).start()
    proxied = database_url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}")
    gw = LiveGateway(standins, proxied)
    client = None
    try:
        tenant = await acreate_tenant_with_key(database_url)  # never seen by this gateway yet
        proxy.cut()
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=tenant.key, max_retries=0, timeout=20)
        started = asyncio.get_running_loop().time()
        with pytest.raises(openai.APIStatusError) as refused:  # never served without checking the key
            await client.chat.completions.create(model="openai/gpt-oss-120b", messages=HELLO)
        assert refused.value.status_code == 503 and refused.value.body["code"] == "auth_unavailable"
        assert refused.value.response.headers["retry-after"]
        # Bounded: the request path never waits long on the database.
        assert asyncio.get_running_loop().time() - started < 8
    finally:
        if client is not None:
            await client.close()
        gw.stop()
        proxy.stop()
