"""The admin API over HTTP against the live gateway: auth, tenants, keys, budgets, validation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from service.metering.admission import period_start
from tests.metering.conftest import ADMIN_TOKEN
from tests.support import fetch


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    return error


def _tenant(admin, **fields) -> dict:
    r = admin.post("/admin/tenants", json={"name": _name("t"), **fields})
    assert r.status_code == 201, r.text
    return r.json()


# --- auth -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/admin/tenants", "/admin/usage", "/admin/billing/export?period=2024-02"])
def test_missing_or_wrong_admin_token_is_401(anon, path):
    error = _error(anon.get(path), 401)
    assert error["type"] == "authentication_error" and error["code"] == "missing_admin_token"
    for header in (f"Bearer {ADMIN_TOKEN}x", "Bearer short", ADMIN_TOKEN, f"Basic {ADMIN_TOKEN}"):
        error = _error(anon.get(path, headers={"authorization": header}), 401)
        assert error["code"] == "invalid_admin_token"


def test_a_tenant_api_key_is_not_an_admin_token(anon, tenant):
    _error(anon.get("/admin/tenants", headers={"authorization": f"Bearer {tenant.key}"}), 401)


@pytest.fixture(scope="module")
def gateway_without_admin(standins, database_url):
    from tests.conftest import LiveGateway

    gw = LiveGateway(standins, database_url, SWITCHYARD_ADMIN_TOKEN="")
    yield gw
    gw.stop()


def test_admin_api_disabled_without_a_token_setting(gateway_without_admin):
    r = httpx.get(gateway_without_admin.url + "/admin/tenants",
                  headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    error = _error(r, 403)
    assert error["message"] == "admin API disabled: set SWITCHYARD_ADMIN_TOKEN"
    assert error["type"] == "permission_error"
    r = httpx.post(gateway_without_admin.url + "/admin/tenants", json={"name": "x"})
    assert r.status_code == 403


# --- tenants ----------------------------------------------------------------------------------------

def test_create_get_list_and_patch_a_tenant(admin):
    name = _name("acme")
    r = admin.post("/admin/tenants", json={"name": name, "markup": "0.25", "allowed_models": [
        "openai/gpt-oss-120b", "budget"], "denied_front_ends": ["xpay"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == name and created["status"] == "active"
    assert Decimal(created["markup"]) == Decimal("0.25")
    assert created["allowed_models"] == ["openai/gpt-oss-120b", "budget"]
    assert created["denied_front_ends"] == ["xpay"]

    assert admin.get(f"/admin/tenants/{created['id']}").json() == created
    assert admin.get(f"/admin/tenants/{name}").json() == created
    listed = admin.get("/admin/tenants").json()["data"]
    assert created in listed
    assert [t["name"] for t in listed] == sorted(t["name"] for t in listed)

    r = admin.patch(f"/admin/tenants/{name}",
                    json={"markup": 0.5, "allowed_models": None, "denied_front_ends": []})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert Decimal(patched["markup"]) == Decimal("0.5")
    assert patched["allowed_models"] is None and patched["denied_front_ends"] == []
    renamed = admin.patch(f"/admin/tenants/{created['id']}", json={"name": name + "-b"}).json()
    assert renamed["name"] == name + "-b" and renamed["id"] == created["id"]


@pytest.mark.parametrize(("body", "param"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": " padded "}, "name"),
    ({"name": 7}, "name"),
    ({"name": "ok", "markup": "-0.1"}, "markup"),
    ({"name": "ok", "markup": "abc"}, "markup"),
    ({"name": "ok", "markup": "NaN"}, "markup"),
    ({"name": "ok", "markup": True}, "markup"),
    ({"name": "ok", "markup": "0.0000001"}, "markup"),
    ({"name": "ok", "markup": "1000000"}, "markup"),
    ({"name": "ok", "allowed_models": ["no/such-model"]}, "allowed_models"),
    ({"name": "ok", "allowed_models": "openai/gpt-oss-120b"}, "allowed_models"),
    ({"name": "ok", "denied_front_ends": ["openrouter"]}, "denied_front_ends"),
    ({"name": "ok", "status": "active"}, "status"),
    ({"name": "ok", "colour": "blue"}, "colour"),
])
def test_create_tenant_validation(admin, body, param):
    error = _error(admin.post("/admin/tenants", json=body), 400, param)
    assert error["type"] == "invalid_request_error"


def test_tenant_body_must_be_a_json_object(admin):
    _error(admin.post("/admin/tenants", json=["x"]), 400)
    _error(admin.post("/admin/tenants", content=b"{nope", headers={"content-type": "application/json"}), 400)


def test_duplicate_tenant_name_is_409(admin):
    t = _tenant(admin)
    error = _error(admin.post("/admin/tenants", json={"name": t["name"]}), 409, "name")
    assert error["code"] == "tenant_exists"
    other = _tenant(admin)
    _error(admin.patch(f"/admin/tenants/{other['id']}", json={"name": t["name"]}), 409, "name")


@pytest.mark.parametrize(("body", "param"), [
    ({"status": "paused"}, "status"),
    ({"markup": -1}, "markup"),
    ({"allowed_models": ["nope"]}, "allowed_models"),
    ({"denied_front_ends": "xpay"}, "denied_front_ends"),
    ({"id": "x"}, "id"),
])
def test_patch_tenant_validation(admin, body, param):
    t = _tenant(admin)
    _error(admin.patch(f"/admin/tenants/{t['id']}", json=body), 400, param)
    assert admin.get(f"/admin/tenants/{t['id']}").json() == t


def test_unknown_tenant_is_404(admin):
    for r in (admin.get("/admin/tenants/nobody-here"), admin.get(f"/admin/tenants/{uuid.uuid4()}"),
              admin.patch("/admin/tenants/nobody-here", json={"status": "disabled"}),
              admin.post("/admin/tenants/nobody-here/keys", json={}),
              admin.get("/admin/tenants/nobody-here/keys"),
              admin.get("/admin/tenants/nobody-here/budgets")):
        assert _error(r, 404)["code"] == "tenant_not_found"


# --- keys -------------------------------------------------------------------------------------------

def test_key_is_shown_once_and_listing_never_shows_it(admin, database_url):
    t = _tenant(admin)
    r = admin.post(f"/admin/tenants/{t['name']}/keys",
                   json={"name": "ci", "rpm_limit": 60, "tpm_limit": 100000})
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith(created["prefix"]) and len(key) > len(created["prefix"]) + 20
    assert created["name"] == "ci" and created["rpm_limit"] == 60 and created["tpm_limit"] == 100000
    assert created["tenant_id"] == t["id"] and created["revoked_at"] is None
    # An empty body is fine: every field is optional.
    second = admin.post(f"/admin/tenants/{t['id']}/keys")
    assert second.status_code == 201 and second.json()["name"] is None

    listing = admin.get(f"/admin/tenants/{t['id']}/keys")
    assert listing.status_code == 200
    assert key not in listing.text and second.json()["key"] not in listing.text
    rows = listing.json()["data"]
    assert [k["id"] for k in rows] == [created["id"], second.json()["id"]]
    assert all("key" not in k and "key_hash" not in k for k in rows)
    assert rows[0] == {k: v for k, v in created.items() if k != "key"}
    stored = asyncio.run(fetch(database_url, "SELECT key_hash FROM api_keys WHERE id = $1",
                               uuid.UUID(created["id"])))
    assert key.encode() not in bytes(stored[0]["key_hash"])


@pytest.mark.parametrize(("body", "param"), [
    ({"rpm_limit": 0}, "rpm_limit"), ({"rpm_limit": "10"}, "rpm_limit"), ({"tpm_limit": -5}, "tpm_limit"),
    ({"tpm_limit": 1.5}, "tpm_limit"), ({"name": 3}, "name"), ({"secret": "x"}, "secret"),
])
def test_create_key_validation(admin, body, param):
    t = _tenant(admin)
    _error(admin.post(f"/admin/tenants/{t['id']}/keys", json=body), 400, param)
    assert admin.get(f"/admin/tenants/{t['id']}/keys").json()["data"] == []


def test_revoke_takes_effect_on_the_very_next_request(admin, anon):
    t = _tenant(admin)
    first = admin.post(f"/admin/tenants/{t['id']}/keys", json={}).json()
    second = admin.post(f"/admin/tenants/{t['id']}/keys", json={}).json()
    for k in (first, second):
        assert anon.get("/v1/models", headers={"authorization": f"Bearer {k['key']}"}).status_code == 200

    r = admin.delete(f"/admin/keys/{first['prefix']}")
    assert r.status_code == 200, r.text
    revoked_at = r.json()["revoked_at"]
    assert revoked_at is not None
    error = _error(anon.get("/v1/models", headers={"authorization": f"Bearer {first['key']}"}), 401)
    assert error["code"] == "invalid_api_key"
    # Idempotent: revoking again keeps the first revocation time.
    assert admin.delete(f"/admin/keys/{first['id']}").json()["revoked_at"] == revoked_at
    # The tenant's other key is untouched.
    assert anon.get("/v1/models", headers={"authorization": f"Bearer {second['key']}"}).status_code == 200
    listed = {k["id"]: k for k in admin.get(f"/admin/tenants/{t['id']}/keys").json()["data"]}
    assert listed[first["id"]]["revoked_at"] == revoked_at and listed[second["id"]]["revoked_at"] is None
    # The record stays readable, as the document says: usage rows and billing exports name the key.
    assert admin.get(f"/admin/keys/{first['id']}").json()["revoked_at"] == revoked_at


def test_revoking_an_unknown_key_is_404(admin):
    assert _error(admin.delete("/admin/keys/sk-sy-nosuchkey"), 404)["code"] == "key_not_found"
    _error(admin.delete(f"/admin/keys/{uuid.uuid4()}"), 404)


def test_disabling_a_tenant_takes_effect_at_once_and_enabling_too(admin, anon):
    t = _tenant(admin)
    key = admin.post(f"/admin/tenants/{t['id']}/keys", json={}).json()["key"]
    auth = {"authorization": f"Bearer {key}"}
    assert anon.get("/v1/models", headers=auth).status_code == 200
    disabled = admin.patch(f"/admin/tenants/{t['id']}", json={"status": "disabled"})
    assert disabled.json()["status"] == "disabled"
    _error(anon.get("/v1/models", headers=auth), 401)
    _error(anon.post("/v1/chat/completions", headers=auth,
                     json={"model": "openai/gpt-oss-120b",
                           "messages": [{"role": "user", "content": "hi"}]}), 401)
    assert admin.patch(f"/admin/tenants/{t['id']}", json={"status": "active"}).status_code == 200
    assert anon.get("/v1/models", headers=auth).status_code == 200


def test_policy_change_is_seen_on_the_next_request(admin, anon):
    t = _tenant(admin)
    key = admin.post(f"/admin/tenants/{t['id']}/keys", json={}).json()["key"]
    auth = {"authorization": f"Bearer {key}"}
    assert len(anon.get("/v1/models", headers=auth).json()["data"]) > 1
    admin.patch(f"/admin/tenants/{t['id']}", json={"allowed_models": ["openai/gpt-oss-120b"]})
    listed = anon.get("/v1/models", headers=auth).json()["data"]
    # The one model, and the pools and auto that now hold only it.
    assert [m["id"] for m in listed if m["kind"] == "model"] == ["openai/gpt-oss-120b"]
    assert all(m["models"] == ["openai/gpt-oss-120b"] for m in listed if m["kind"] != "model")


# --- budgets ----------------------------------------------------------------------------------------

def test_budget_upsert_list_and_delete(admin, database_url):
    t = _tenant(admin)
    key = admin.post(f"/admin/tenants/{t['id']}/keys", json={}).json()
    r = admin.put(f"/admin/tenants/{t['name']}/budgets",
                  json={"period": "month", "limit_usd": "100", "hard": True})
    assert r.status_code == 201, r.text
    month = r.json()
    assert month["limit_usd"] == "100.0000000000" and month["hard"] is True and month["key_id"] is None
    assert month["spent_usd"] == "0.0000000000" and month["leased_usd"] == "0.0000000000"
    assert datetime.fromisoformat(month["current_period_start"]) == period_start("month", datetime.now(UTC))

    again = admin.put(f"/admin/tenants/{t['id']}/budgets", json={"period": "month", "limit_usd": 250.5,
                                                                  "hard": False})
    assert again.status_code == 200
    assert again.json()["id"] == month["id"] and again.json()["limit_usd"] == "250.5000000000"
    assert again.json()["hard"] is False

    day = admin.put(f"/admin/tenants/{t['id']}/budgets",
                    json={"period": "day", "limit_usd": "5.0000000001", "key_id": key["prefix"]})
    assert day.status_code == 201, day.text
    assert day.json()["key_id"] == key["id"] and day.json()["key_prefix"] == key["prefix"]
    assert day.json()["hard"] is True
    by_id = admin.put(f"/admin/tenants/{t['id']}/budgets",
                      json={"period": "day", "limit_usd": "6", "key_id": key["id"]})
    assert by_id.status_code == 200 and by_id.json()["id"] == day.json()["id"]

    # Spend counted by enforcement for the current period shows; an older period's does not.
    today = period_start("day", datetime.now(UTC))
    scope = f"budget:{day.json()['id']}"
    asyncio.run(fetch(database_url, "INSERT INTO quota_counters (scope, period_start, used) VALUES"
                      " ($1, $2, 1.25), ($1, '2020-01-01T00:00:00Z', 99)", scope, today))
    asyncio.run(fetch(database_url, "INSERT INTO quota_leases"
                      " (scope, period_start, holder, granted, expires_at) VALUES"
                      " ($1, $2, 'h1', 0.5, now() + interval '30 s'), ($1, $2, 'h2', 0.25, now())",
                      scope, today))
    listed = admin.get(f"/admin/tenants/{t['id']}/budgets").json()["data"]
    assert [b["id"] for b in listed] == [month["id"], day.json()["id"]]
    assert listed[1]["spent_usd"] == "1.2500000000" and listed[1]["leased_usd"] == "0.7500000000"
    assert listed[0]["spent_usd"] == "0.0000000000"
    assert datetime.fromisoformat(listed[1]["current_period_start"]) == today

    r = admin.delete(f"/admin/budgets/{day.json()['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    _error(admin.delete(f"/admin/budgets/{day.json()['id']}"), 404)
    _error(admin.delete("/admin/budgets/not-a-uuid"), 400, "budget_id")
    assert [b["id"] for b in admin.get(f"/admin/tenants/{t['id']}/budgets").json()["data"]] == [month["id"]]
    left = asyncio.run(fetch(database_url, "SELECT 1 FROM quota_counters WHERE scope = $1"
                             " UNION ALL SELECT 1 FROM quota_leases WHERE scope = $1", scope))
    assert left == []


@pytest.mark.parametrize(("body", "param"), [
    ({"limit_usd": "1"}, "period"),
    ({"period": "week", "limit_usd": "1"}, "period"),
    ({"period": "day"}, "limit_usd"),
    ({"period": "day", "limit_usd": "-1"}, "limit_usd"),
    ({"period": "day", "limit_usd": "0.00000000001"}, "limit_usd"),
    ({"period": "day", "limit_usd": "1e12"}, "limit_usd"),
    ({"period": "day", "limit_usd": None}, "limit_usd"),
    ({"period": "day", "limit_usd": "1", "hard": "yes"}, "hard"),
    ({"period": "day", "limit_usd": "1", "key_id": "sk-sy-notakey"}, "key_id"),
    ({"period": "day", "limit_usd": "1", "key_id": 5}, "key_id"),
    ({"period": "day", "limit_usd": "1", "tenant_id": "x"}, "tenant_id"),
])
def test_budget_validation(admin, body, param):
    t = _tenant(admin)
    _error(admin.put(f"/admin/tenants/{t['id']}/budgets", json=body), 400, param)
    assert admin.get(f"/admin/tenants/{t['id']}/budgets").json()["data"] == []


def test_budget_for_another_tenants_key_is_refused(admin):
    mine, theirs = _tenant(admin), _tenant(admin)
    their_key = admin.post(f"/admin/tenants/{theirs['id']}/keys", json={}).json()
    for ref in (their_key["id"], their_key["prefix"]):
        error = _error(admin.put(f"/admin/tenants/{mine['id']}/budgets",
                                 json={"period": "day", "limit_usd": "1", "key_id": ref}), 400, "key_id")
        assert error["code"] == "key_not_found"
