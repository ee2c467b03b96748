"""Alerts end to end: the admin API, real requests crossing budgets on live gateways, signed
deliveries to the tenant's and the operator's receivers, and a gateway restart during an outage."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from service.alerts.signing import verify
from tests.alerts.conftest import Receiver, wait_until
from tests.conftest import LiveGateway
from tests.support import acreate_tenant_with_key

ADMIN = {"authorization": "Bearer test-admin-token-0123456789"}
OPERATOR_SECRET = "operator-secret-0123456789"
MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Say hello."}]
PINNED = {"provider": {"only": ["baseten"]}}


@pytest.fixture(scope="module")
def e2e_db(postgres):
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


def alert_env(receiver: Receiver) -> dict[str, str]:
    return {
        "SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS": "true",
        "SWITCHYARD_ALERT_WEBHOOK_URL": receiver.url + "/operator",
        "SWITCHYARD_ALERT_WEBHOOK_SECRET": OPERATOR_SECRET,
        "SWITCHYARD_ALERT_POLL_SECONDS": "0.05",
        "SWITCHYARD_ALERT_RETRY_BASE_SECONDS": "0.05",
        "SWITCHYARD_ALERT_RETRY_MAX_SECONDS": "0.3",
        "SWITCHYARD_ALERT_TIMEOUT_SECONDS": "1",
    }


async def start_gateway(standins, database_url: str, receiver: Receiver) -> LiveGateway:
    return await asyncio.to_thread(LiveGateway, standins, database_url, **alert_env(receiver))


def check_signed(receiver: Receiver, path: str, secret: str) -> list[dict]:
    events = []
    for r in receiver.accepted(path):
        assert verify(secret, r.headers["Switchyard-Signature"], r.body)
        event = orjson.loads(r.body)
        assert r.headers["Idempotency-Key"] == event["id"]
        events.append(event)
    return events


async def test_budget_alerts_reach_both_webhooks_and_survive_a_restart(standins, e2e_db):
    receiver = await Receiver().start()
    gw = await start_gateway(standins, e2e_db, receiver)
    try:
        async with httpx.AsyncClient(base_url=gw.url, headers=ADMIN, timeout=20) as admin:
            tenant = await acreate_tenant_with_key(e2e_db)
            hook = f"/admin/tenants/{tenant.tenant_name}/alerts/webhook"
            created = await admin.put(hook, json={"url": receiver.url + "/tenant"})
            assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
            again = await admin.put(hook, json={"url": receiver.url + "/tenant"})
            assert again.status_code == 200 and "secret" not in again.json()
            rotated = await admin.put(hook, json={"url": receiver.url + "/tenant", "rotate_secret": True})
            secret = rotated.json()["secret"]
            assert secret != created.json()["secret"]
            listed = (await admin.get(hook)).json()
            assert listed["url"] == receiver.url + "/tenant" and "secret" not in listed
            operator = (await admin.get("/admin/alerts/webhook")).json()
            assert operator["source"] == "env" and operator["url"] == receiver.url + "/operator"
            assert (await admin.put("/admin/alerts/webhook", json={"url": "https://x.example"})).status_code == 409

            async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=tenant.key, max_retries=0) as client:
                first = await client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=HELLO, max_tokens=50, extra_body=PINNED)
                cost = Decimal(first.headers["x-switchyard-cost-usd"])
                assert cost > 0
                limit = (cost * Decimal("3.5")).quantize(Decimal("1E-10"))
                budget = await admin.put(f"/admin/tenants/{tenant.tenant_name}/budgets",
                                         json={"period": "month", "limit_usd": str(limit), "hard": False})
                budget_id = budget.json()["id"]
                own = await admin.put(f"/admin/budgets/{budget_id}/alerts", json={"thresholds": [50, "100"]})
                assert own.json() == {"budget_id": budget_id, "thresholds": ["50", "100"], "default": False}
                for _ in range(5):
                    await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=50, extra_body=PINNED)

            # 50 and 100 %, and the request the soft budget could no longer cover (served and flagged).
            await wait_until(lambda: len(receiver.accepted()) == 6)
            to_tenant = check_signed(receiver, "/tenant", secret)
            to_operator = check_signed(receiver, "/operator", OPERATOR_SECRET)
            assert sorted(e["id"] for e in to_tenant) == sorted(e["id"] for e in to_operator)
            thresholds = [e for e in to_tenant if e["type"] == "budget.threshold"]
            assert sorted(e["data"]["threshold_percent"] for e in thresholds) == [50, 100]
            assert all(Decimal(e["data"]["spent_usd"]) >= limit * e["data"]["threshold_percent"] / 100
                       for e in thresholds)
            (reached,) = [e for e in to_tenant if e["type"] == "budget.limit_reached"]
            assert reached["data"]["hard"] is False
            assert all(e["data"]["budget_id"] == budget_id and Decimal(e["data"]["limit_usd"]) == limit
                       and e["tenant_id"] == str(tenant.tenant_id) for e in to_tenant)

            async def listed_delivered() -> bool:
                page = (await admin.get("/admin/alerts/events", params={"tenant": tenant.tenant_name})).json()
                return len(page["data"]) == 3 and all(e["status"] == "delivered" for e in page["data"])
            await wait_until(listed_delivered)
            query = {"tenant": tenant.tenant_name, "type": "budget.threshold", "limit": 1}
            page = (await admin.get("/admin/alerts/events", params=query)).json()
            assert page["has_more"] and len(page["data"]) == 1
            rest = (await admin.get("/admin/alerts/events", params={**query, "before": page["data"][0]["id"]})).json()
            assert len(rest["data"]) == 1 and rest["data"][0]["id"] != page["data"][0]["id"]
            assert {page["data"][0]["id"], rest["data"][0]["id"]} == {e["id"] for e in thresholds}
            detail = (await admin.get(f"/admin/alerts/events/{page['data'][0]['id']}")).json()
            assert sorted(d["target"] for d in detail["deliveries"]) == ["operator", "tenant"]
            for d in detail["deliveries"]:
                assert d["status"] == "delivered" and d["attempts"] == 1
                assert [a["status_code"] for a in d["attempt_log"]] == [204]

            # An outage of the receivers, a hard budget that refuses a request, and a restart.
            await receiver.stop()
            hard = await acreate_tenant_with_key(e2e_db)
            hard_hook = await admin.put(f"/admin/tenants/{hard.tenant_name}/alerts/webhook",
                                        json={"url": receiver.url + "/tenant"})
            hard_secret = hard_hook.json()["secret"]
            await admin.put(f"/admin/tenants/{hard.tenant_name}/budgets",
                            json={"period": "day", "limit_usd": "0.0000001", "hard": True})
        async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=hard.key, max_retries=0) as client:
            with pytest.raises(openai.APIStatusError) as refused:
                await client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=PINNED)
            assert refused.value.status_code == 402

        async def attempted() -> bool:
            async with httpx.AsyncClient(base_url=gw.url, headers=ADMIN) as admin:
                page = (await admin.get("/admin/alerts/events", params={"tenant": hard.tenant_name})).json()
            return len(page["data"]) == 1 and all(d["attempts"] >= 2 for d in page["data"][0]["deliveries"])
        await wait_until(attempted)
    finally:
        await asyncio.to_thread(gw.stop)
    receiver.received.clear()  # what came before the outage was checked above
    await receiver.start()  # back, on the same port, while no gateway runs
    gw = await start_gateway(standins, e2e_db, receiver)
    try:
        await wait_until(lambda: len(receiver.accepted()) == 2)
        (to_tenant,) = check_signed(receiver, "/tenant", hard_secret)
        (to_operator,) = check_signed(receiver, "/operator", OPERATOR_SECRET)
        assert to_tenant == to_operator and to_tenant["type"] == "budget.limit_reached"
        assert to_tenant["data"]["hard"] is True and to_tenant["data"]["limit_usd"] == "0.0000001"
    finally:
        await asyncio.to_thread(gw.stop)
        await receiver.stop()


async def test_the_admin_api_refuses_internal_tenant_urls_and_bad_thresholds(gateway, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    async with httpx.AsyncClient(base_url=gateway.url, headers=ADMIN, timeout=20) as admin:
        hook = f"/admin/tenants/{tenant.tenant_id}/alerts/webhook"
        for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest", "https://localhost/hook",
                    "http://[::1]/", "http://10.0.0.5/", "ftp://example.com/"):
            r = await admin.put(hook, json={"url": url})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_url", url
        assert (await admin.get(hook)).status_code == 404
        assert (await admin.put(hook, json={"url": "https://hooks.example.com/x"})).status_code == 201
        assert (await admin.delete(hook)).json()["deleted"] is True
        assert (await admin.put(hook, json={})).json()["error"]["code"] == "missing_required_parameter"
        no_tenant = await admin.put("/admin/tenants/nobody-here/alerts/webhook", json={"url": "https://a.b"})
        assert no_tenant.status_code == 404

        budget = (await admin.put(f"/admin/tenants/{tenant.tenant_id}/budgets",
                                  json={"period": "month", "limit_usd": "5"})).json()["id"]
        assert (await admin.get(f"/admin/budgets/{budget}/alerts")).json() == {
            "budget_id": budget, "thresholds": ["50", "80", "100"], "default": True}
        for bad in ([-1], ["abc"], [1.234], list(range(21)), "50", {}):
            r = await admin.put(f"/admin/budgets/{budget}/alerts", json={"thresholds": bad})
            assert r.status_code == 400, bad
        assert (await admin.put(f"/admin/budgets/{budget}/alerts", json={"thresholds": []})).json()["thresholds"] == []
        missing = "00000000-0000-0000-0000-000000000001"
        assert (await admin.put(f"/admin/budgets/{missing}/alerts", json={"thresholds": [5]})).status_code == 404
        assert (await admin.get("/admin/alerts/events", params={"status": "weird"})).status_code == 400
        for query in ({"limit": "0"}, {"limit": "²"}, {"before": "x"}, {"type": "budget"}):
            assert (await admin.get("/admin/alerts/events", params=query)).status_code == 400, query
        assert (await admin.get("/admin/alerts/events", params={"tenant": "a\x00b"})).status_code < 500
        assert (await admin.get("/admin/alerts/events/not-a-uuid")).status_code == 400
        assert (await admin.get(f"/admin/alerts/events/{missing}")).status_code == 404
        assert (await httpx.AsyncClient(base_url=gateway.url).get("/admin/alerts/events")).status_code == 401
