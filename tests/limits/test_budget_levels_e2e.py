"""Budgets at every level (tenant, project, key; day, month, rolling window) through two live
gateways: concurrent requests never pass any level, and each refusal names the level that refused."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from decimal import Decimal

import httpx
import openai
import pytest

from tests.conftest import LiveGateway
from tests.metering.conftest import ADMIN_TOKEN
from tests.support import async_openai_clients, fetch, wait_for_rows

MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Say hello."}]
PINNED = {"provider": {"only": ["baseten"]}}


@pytest.fixture(scope="module")
def second_gateway(standins, database_url):
    gw = LiveGateway(standins, database_url)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def admin_http(gateway):
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30) as c:
        yield c


@dataclass
class Org:
    tenant: dict
    project: dict
    keys: list[dict]  # two in the project, one in none


def _org(admin) -> Org:
    tenant = admin.post("/admin/tenants", json={"name": f"lvl-{uuid.uuid4().hex[:8]}"}).json()
    project = admin.post(f"/admin/tenants/{tenant['id']}/projects", json={"name": "p"}).json()
    keys = [admin.post(f"/admin/tenants/{tenant['id']}/keys", json=body).json()
            for body in ({"project_id": "p"}, {"project_id": "p"}, {})]
    return Org(tenant, project, keys)


def _budget(admin, org: Org, limit: str, **level) -> dict:
    r = admin.put(f"/admin/tenants/{org.tenant['id']}/budgets", json={"period": "day", "limit_usd": limit, **level})
    assert r.status_code == 201, r.text
    return r.json()


async def _storm(gateways, keys: list[str], n: int) -> list[tuple[int, str, dict]]:
    """n concurrent requests, spread over the keys and the gateways: (status, key, error body)."""
    retry_told: list[str | None] = []  # x-should-retry of every refusal
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for ki, key in enumerate(keys):
            for gi, gw in enumerate(gateways):
                (clients[(ki, gi)],) = await stack.enter_async_context(async_openai_clients([gw.url + "/v1"], key))

        async def one(i: int) -> tuple[int, str, dict]:
            key_index, gw_index = i % len(keys), (i // len(keys)) % len(gateways)
            try:
                await clients[(key_index, gw_index)].chat.completions.create(
                    model=MODEL, messages=HELLO, max_tokens=100, extra_body=PINNED)
                return 200, keys[key_index], {}
            except openai.APIStatusError as exc:
                retry_told.append(exc.response.headers.get("x-should-retry"))
                return exc.status_code, keys[key_index], exc.body

        results = list(await asyncio.gather(*(one(i) for i in range(n))))
    assert all(told == "false" for told in retry_told), retry_told
    return results


async def _billed(database_url: str, tenant_id: str, served: int) -> dict[uuid.UUID | None, Decimal]:
    """Billed per key, once every served request's row is in the ledger."""
    rows = await wait_for_rows(database_url, "SELECT key_id, billed_usd FROM usage_events WHERE tenant_id = $1",
                               served, uuid.UUID(tenant_id))
    assert len(rows) == served
    out: dict[uuid.UUID | None, Decimal] = {}
    for r in rows:
        out[r["key_id"]] = out.get(r["key_id"], Decimal(0)) + r["billed_usd"]
    return out


async def test_a_key_budget_is_never_passed_across_two_gateways(gateway, second_gateway, admin_http, database_url):
    org = _org(admin_http)
    limit = Decimal("0.0003")
    _budget(admin_http, org, str(limit), key_id=org.keys[0]["prefix"])
    results = await _storm([gateway, second_gateway], [org.keys[0]["key"], org.keys[2]["key"]], 60)
    mine = [r for r in results if r[1] == org.keys[0]["key"]]
    others = [r for r in results if r[1] == org.keys[2]["key"]]
    assert {s for s, _, _ in mine} == {200, 402}
    assert {s for s, _, _ in others} == {200}
    refusal = next(body for s, _, body in mine if s == 402)
    assert refusal["code"] == "budget_exceeded"
    assert "the key's daily $0.0003" in refusal["message"]
    billed = await _billed(database_url, org.tenant["id"], sum(1 for s, _, _ in results if s == 200))
    assert billed[uuid.UUID(org.keys[0]["id"])] <= limit


async def test_a_project_budget_binds_all_its_keys_together(gateway, second_gateway, admin_http, database_url):
    org = _org(admin_http)
    limit = Decimal("0.0004")
    _budget(admin_http, org, str(limit), project_id="p")
    results = await _storm([gateway, second_gateway], [k["key"] for k in org.keys], 75)
    in_project = [r for r in results if r[1] in (org.keys[0]["key"], org.keys[1]["key"])]
    assert {s for s, _, _ in in_project} == {200, 402}
    assert all(s == 200 for s, key, _ in results if key == org.keys[2]["key"])
    assert any("the project's daily" in body.get("message", "") for s, _, body in in_project if s == 402)
    billed = await _billed(database_url, org.tenant["id"], sum(1 for s, _, _ in results if s == 200))
    # Which of the two keys the budget served first is up to arrival order; one may have had nothing.
    project_billed = sum((billed.get(uuid.UUID(k["id"]), Decimal(0)) for k in org.keys[:2]), Decimal(0))
    assert 0 < project_billed <= limit


async def test_every_level_holds_at_once(gateway, second_gateway, admin_http, database_url):
    org = _org(admin_http)
    tenant_limit, project_limit, key_limit = Decimal("0.0007"), Decimal("0.0005"), Decimal("0.0002")
    _budget(admin_http, org, str(tenant_limit))
    _budget(admin_http, org, str(project_limit), project_id=org.project["id"])
    _budget(admin_http, org, str(key_limit), key_id=org.keys[0]["id"])
    listed = admin_http.get(f"/admin/tenants/{org.tenant['id']}/budgets").json()["data"]
    assert [b["level"] for b in listed] == ["tenant", "project", "key"]
    results = await _storm([gateway, second_gateway], [k["key"] for k in org.keys], 90)
    assert {s for s, _, _ in results} == {200, 402}
    billed = await _billed(database_url, org.tenant["id"], sum(1 for s, _, _ in results if s == 200))
    k0, k1 = (billed.get(uuid.UUID(org.keys[i]["id"]), Decimal(0)) for i in (0, 1))
    assert k0 <= key_limit
    assert k0 + k1 <= project_limit
    assert sum(billed.values()) <= tenant_limit
    # What enforcement counted (flushed or still leased) is what was billed, level by level.
    await asyncio.sleep(1.5)  # the leasers flush settled spend every half second
    spent = {b["level"]: Decimal(b["spent_usd"]) for b in
             admin_http.get(f"/admin/tenants/{org.tenant['id']}/budgets").json()["data"]}
    assert spent == {"tenant": sum(billed.values()), "project": k0 + k1, "key": k0}


async def test_a_rolling_window_budget_is_never_passed(gateway, second_gateway, admin_http, database_url):
    org = _org(admin_http)
    limit = Decimal("0.0003")
    r = admin_http.put(f"/admin/tenants/{org.tenant['id']}/budgets",
                       json={"period": "rolling", "window_hours": 24, "limit_usd": str(limit)})
    assert r.status_code == 201, r.text
    assert r.json()["window_hours"] == 24
    results = await _storm([gateway, second_gateway], [org.keys[2]["key"]], 50)
    assert {s for s, _, _ in results} == {200, 402}
    assert "rolling 24-hour" in next(body["message"] for s, _, body in results if s == 402)
    billed = await _billed(database_url, org.tenant["id"], sum(1 for s, _, _ in results if s == 200))
    assert sum(billed.values()) <= limit
    rows = await fetch(database_url, "SELECT count(*) AS n FROM quota_counters WHERE scope = $1",
                       f"budget:{r.json()['id']}")
    assert rows[0]["n"] >= 1  # counted in hourly buckets


async def test_a_soft_project_budget_serves_and_flags(gateway, admin_http):
    org = _org(admin_http)
    admin_http.put(f"/admin/tenants/{org.tenant['id']}/budgets",
                   json={"period": "month", "limit_usd": "0.00000001", "hard": False, "project_id": "p"})
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=org.keys[1]["key"], max_retries=0)
    try:
        raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, extra_body=PINNED)
    finally:
        c.close()
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-switchyard-budget-warning"] == "soft budget exceeded"


@pytest.mark.parametrize(("body", "param"), [
    ({"period": "rolling", "limit_usd": "1"}, "window_hours"),
    ({"period": "rolling", "limit_usd": "1", "window_hours": 0}, "window_hours"),
    ({"period": "rolling", "limit_usd": "1", "window_hours": 745}, "window_hours"),
    ({"period": "day", "limit_usd": "1", "window_hours": 3}, "window_hours"),
    ({"period": "day", "limit_usd": "1", "project_id": "nope"}, "project_id"),
    ({"period": "day", "limit_usd": "1", "project_id": "p", "key_id": "k"}, "project_id"),
])
def test_budget_scope_validation(admin_http, body, param):
    org = _org(admin_http)
    r = admin_http.put(f"/admin/tenants/{org.tenant['id']}/budgets", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
