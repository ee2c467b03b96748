"""Projects and the key lifecycle through the admin API and the CLI, seen by two live gateways:
allow-lists intersected, expiry, rotation with a grace period, and every change holding at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.cli import main
from tests.conftest import LiveGateway
from tests.support import fetch, wait_for_rows

MODEL, OTHER, THIRD = "openai/gpt-oss-120b", "moonshotai/Kimi-K2.5", "zai-org/GLM-4.6"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "provider": {"only": ["baseten"]}}


@pytest.fixture(scope="module")
def other_gateway(standins, database_url):
    gw = LiveGateway(standins, database_url)
    yield gw
    gw.stop()


def _error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param
    return error


def _tenant(admin, **fields) -> dict:
    r = admin.post("/admin/tenants", json={"name": f"pk-{uuid.uuid4().hex[:8]}", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def _key(admin, tenant: dict, **fields) -> dict:
    r = admin.post(f"/admin/tenants/{tenant['id']}/keys", json=fields)
    assert r.status_code == 201, r.text
    return r.json()


def _models(gw_url: str, key: str) -> list[str] | int:
    r = httpx.get(gw_url + "/v1/models", headers={"authorization": f"Bearer {key}"})
    # Models only: the pools and `auto` listed beside them are made of these.
    return sorted(m["id"] for m in r.json()["data"] if m.get("kind") not in ("pool", "auto")) \
        if r.status_code == 200 else r.status_code


def _status(gw_url: str, key: str) -> int:
    return httpx.get(gw_url + "/v1/models", headers={"authorization": f"Bearer {key}"}).status_code


def _eventually(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


# ---- projects ------------------------------------------------------------------------------------

def test_project_create_list_get_patch_and_delete(admin):
    t = _tenant(admin)
    r = admin.post(f"/admin/tenants/{t['name']}/projects", json={"name": "web", "allowed_models": [MODEL]})
    assert r.status_code == 201, r.text
    web = r.json()
    assert web["tenant_id"] == t["id"] and web["allowed_models"] == [MODEL] and web["active_keys"] == 0
    batch = admin.post(f"/admin/tenants/{t['id']}/projects", json={"name": "batch"}).json()
    assert [p["name"] for p in admin.get(f"/admin/tenants/{t['id']}/projects").json()["data"]] == ["batch", "web"]
    assert admin.get(f"/admin/projects/{web['id']}").json() == web
    assert _error(admin.post(f"/admin/tenants/{t['id']}/projects", json={"name": "web"}), 409, "name")["code"] \
        == "project_exists"
    patched = admin.patch(f"/admin/projects/{web['id']}", json={"name": "site", "allowed_models": None}).json()
    assert patched["name"] == "site" and patched["allowed_models"] is None
    _error(admin.patch(f"/admin/projects/{batch['id']}", json={"name": "site"}), 409, "name")
    # Another tenant may use the same name.
    assert admin.post(f"/admin/tenants/{_tenant(admin)['id']}/projects", json={"name": "site"}).status_code == 201

    key = _key(admin, t, project_id="site")
    assert key["project_id"] == web["id"]
    assert admin.get(f"/admin/projects/{web['id']}").json()["active_keys"] == 1
    error = _error(admin.delete(f"/admin/projects/{web['id']}"), 409)
    assert error["code"] == "project_in_use"
    # Revoked keys still belong to it: billing history keeps the project.
    admin.delete(f"/admin/keys/{key['id']}")
    _error(admin.delete(f"/admin/projects/{web['id']}"), 409)
    # An unused project goes, with its budgets.
    admin.put(f"/admin/tenants/{t['id']}/budgets", json={"period": "day", "limit_usd": "1", "project_id": "batch"})
    r = admin.delete(f"/admin/projects/{batch['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert [b for b in admin.get(f"/admin/tenants/{t['id']}/budgets").json()["data"] if b["project_id"]] == []
    assert _error(admin.get(f"/admin/projects/{batch['id']}"), 404)["code"] == "project_not_found"
    _error(admin.get("/admin/projects/not-a-uuid"), 404)
    _error(admin.get(f"/admin/tenants/{uuid.uuid4()}/projects"), 404)


@pytest.mark.parametrize(("body", "param"), [
    ({}, "name"), ({"name": ""}, "name"), ({"name": " x"}, "name"), ({"name": "x", "allowed_models": ["nope"]},
                                                                      "allowed_models"),
    ({"name": "x", "allowed_models": MODEL}, "allowed_models"), ({"name": "x", "budget": 1}, "budget"),
])
def test_project_validation(admin, body, param):
    t = _tenant(admin)
    _error(admin.post(f"/admin/tenants/{t['id']}/projects", json=body), 400, param)
    assert admin.get(f"/admin/tenants/{t['id']}/projects").json()["data"] == []


# ---- keys: fields ----------------------------------------------------------------------------------

def test_key_fields_on_create_get_and_patch(admin):
    t = _tenant(admin)
    admin.post(f"/admin/tenants/{t['id']}/projects", json={"name": "web"})
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    key = _key(admin, t, name="ci", project_id="web", expires_at=expires.isoformat(), metadata={"team": "core"},
               allowed_models=[MODEL], rpm_limit=10)
    assert key["name"] == "ci" and key["metadata"] == {"team": "core"} and key["allowed_models"] == [MODEL]
    assert datetime.fromisoformat(key["expires_at"]) == expires and key["rpm_limit"] == 10
    shown = admin.get(f"/admin/keys/{key['prefix']}").json()
    assert shown == {k: v for k, v in key.items() if k != "key"} and "key_hash" not in shown
    r = admin.patch(f"/admin/keys/{key['id']}", json={"name": "deploy", "rpm_limit": None, "tpm_limit": 5000,
                                                      "metadata": {"team": "ml", "cost_center": "42"},
                                                      "project_id": None, "expires_at": None})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert (patched["name"], patched["rpm_limit"], patched["tpm_limit"]) == ("deploy", None, 5000)
    assert patched["metadata"] == {"team": "ml", "cost_center": "42"}
    assert patched["project_id"] is None and patched["expires_at"] is None
    assert patched["allowed_models"] == [MODEL]  # untouched fields stay


@pytest.mark.parametrize(("body", "param"), [
    ({"expires_at": "next week"}, "expires_at"), ({"expires_at": 5}, "expires_at"),
    ({"metadata": {"k": 1}}, "metadata.k"), ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": "x"}, "metadata"), ({"allowed_models": ["nope"]}, "allowed_models"),
    ({"project_id": "no-such-project"}, "project_id"), ({"project_id": 3}, "project_id"),
    ({"rpm_limit": 0}, "rpm_limit"), ({"prefix": "sk-sy-x"}, "prefix"),
])
def test_key_validation(admin, body, param):
    t = _tenant(admin)
    key = _key(admin, t)
    _error(admin.patch(f"/admin/keys/{key['id']}", json=body), 400, param)
    _error(admin.post(f"/admin/tenants/{t['id']}/keys", json=body), 400, param)
    assert [k["id"] for k in admin.get(f"/admin/tenants/{t['id']}/keys").json()["data"]] == [key["id"]]


def test_a_key_cannot_join_another_tenants_project(admin):
    mine, theirs = _tenant(admin), _tenant(admin)
    project = admin.post(f"/admin/tenants/{theirs['id']}/projects", json={"name": "p"}).json()
    key = _key(admin, mine)
    error = _error(admin.patch(f"/admin/keys/{key['id']}", json={"project_id": project["id"]}), 400, "project_id")
    assert error["code"] == "project_not_found"


# ---- allow-lists -----------------------------------------------------------------------------------

def test_allow_lists_are_intersected_and_changes_hold_at_once_everywhere(admin, gateway, other_gateway):
    t = _tenant(admin, allowed_models=[MODEL, OTHER])
    project = admin.post(f"/admin/tenants/{t['id']}/projects", json={"name": "p",
                                                                     "allowed_models": [OTHER, THIRD]}).json()
    key = _key(admin, t, project_id="p")
    for gw in (gateway, other_gateway):
        assert _models(gw.url, key["key"]) == [OTHER]
    # The tenant allows gpt-oss, the project does not: refused as a model the key may not use.
    r = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key['key']}"})
    assert _error(r, 403, "model")["code"] == "model_not_allowed"

    admin.patch(f"/admin/projects/{project['id']}", json={"allowed_models": None})
    assert _models(gateway.url, key["key"]) == sorted([MODEL, OTHER])  # this process: before the response returned
    assert _eventually(lambda: _models(other_gateway.url, key["key"]) == sorted([MODEL, OTHER]))
    assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {key['key']}"}).status_code == 200

    admin.patch(f"/admin/keys/{key['id']}", json={"allowed_models": [MODEL, THIRD]})
    assert _models(gateway.url, key["key"]) == [MODEL]
    assert _eventually(lambda: _models(other_gateway.url, key["key"]) == [MODEL])
    admin.patch(f"/admin/keys/{key['id']}", json={"allowed_models": [THIRD]})
    assert _models(gateway.url, key["key"]) == []


# ---- expiry ----------------------------------------------------------------------------------------

def test_expiry_holds_without_any_notification_and_can_be_lifted(admin, gateway, other_gateway):
    t = _tenant(admin)
    key = _key(admin, t, expires_at=(datetime.now(UTC) + timedelta(seconds=1.5)).isoformat())
    for gw in (gateway, other_gateway):
        assert _status(gw.url, key["key"]) == 200  # both processes cache it now
    time.sleep(1.6)
    for gw in (gateway, other_gateway):
        error = _error(httpx.get(gw.url + "/v1/models", headers={"authorization": f"Bearer {key['key']}"}), 401)
        assert error["code"] == "invalid_api_key"
    admin.patch(f"/admin/keys/{key['id']}", json={"expires_at": None})
    assert _status(gateway.url, key["key"]) == 200
    assert _eventually(lambda: _status(other_gateway.url, key["key"]) == 200)
    past = _key(admin, t, expires_at="2020-01-01T00:00:00Z")
    assert _status(gateway.url, past["key"]) == 401


# ---- rotation --------------------------------------------------------------------------------------

def test_rotation_keeps_the_old_secret_through_its_grace_period(admin, gateway, other_gateway, database_url):
    t = _tenant(admin)
    old = _key(admin, t, name="svc", rpm_limit=1000)
    for gw in (gateway, other_gateway):
        assert _status(gw.url, old["key"]) == 200
    r = admin.post(f"/admin/keys/{old['prefix']}/rotate", json={"grace_seconds": 2})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["id"] == old["id"] and new["key"] != old["key"] and new["prefix"] != old["prefix"]
    assert new["previous_prefix"] == old["prefix"] and new["name"] == "svc" and new["rpm_limit"] == 1000
    assert old["key"] not in admin.get(f"/admin/tenants/{t['id']}/keys").text
    # Both secrets work on both gateways, for the same key: usage is the key's whichever is used.
    for gw in (gateway, other_gateway):
        for secret in (old["key"], new["key"]):
            r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {secret}"})
            assert r.status_code == 200, r.text
    rows = asyncio.run(wait_for_rows(database_url, "SELECT key_id FROM usage_events WHERE tenant_id = $1", 4,
                                     uuid.UUID(t["id"])))
    assert {r["key_id"] for r in rows} == {uuid.UUID(old["id"])}
    # The key is found by either prefix.
    assert admin.get(f"/admin/keys/{old['prefix']}").json()["id"] == old["id"]
    time.sleep(2.1)
    for gw in (gateway, other_gateway):
        assert _status(gw.url, old["key"]) == 401
        assert _status(gw.url, new["key"]) == 200


def test_rotation_without_grace_and_revocation_end_secrets_at_once_everywhere(admin, gateway, other_gateway):
    t = _tenant(admin)
    first = _key(admin, t)
    for gw in (gateway, other_gateway):
        assert _status(gw.url, first["key"]) == 200
    second = admin.post(f"/admin/keys/{first['id']}/rotate", json={"grace_seconds": 0}).json()
    assert second["previous_prefix"] is None
    assert _status(gateway.url, first["key"]) == 401
    assert _eventually(lambda: _status(other_gateway.url, first["key"]) == 401)

    third = admin.post(f"/admin/keys/{first['id']}/rotate").json()  # the default grace: a day
    assert datetime.fromisoformat(third["previous_expires_at"]) > datetime.now(UTC) + timedelta(hours=23)
    fourth = admin.post(f"/admin/keys/{first['id']}/rotate", json={"grace_seconds": 600}).json()
    # Rotating again during a grace period ends the older secret's at once.
    assert fourth["previous_prefix"] == third["prefix"]
    assert _status(gateway.url, second["key"]) == 401
    for secret in (third["key"], fourth["key"]):
        assert _status(gateway.url, secret) == 200
        assert _eventually(lambda s=secret: _status(other_gateway.url, s) == 200)

    admin.delete(f"/admin/keys/{fourth['prefix']}")
    for secret in (third["key"], fourth["key"]):
        assert _status(gateway.url, secret) == 401
        assert _eventually(lambda s=secret: _status(other_gateway.url, s) == 401)
    error = _error(admin.post(f"/admin/keys/{first['id']}/rotate"), 409)
    assert error["code"] == "key_revoked"
    _error(admin.post(f"/admin/keys/{first['id']}/rotate", json={"grace_seconds": -1}), 400, "grace_seconds")
    _error(admin.post("/admin/keys/sk-sy-nosuchkey/rotate"), 404)


def test_rate_limit_changes_hold_at_once_on_every_gateway(admin, gateway, other_gateway):
    t = _tenant(admin)
    key = _key(admin, t, rpm_limit=50)
    headers = {"authorization": f"Bearer {key['key']}"}

    def limit(gw) -> str | None:
        r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers)
        return r.headers.get("x-ratelimit-limit-requests")

    assert limit(gateway) == limit(other_gateway) == "50"
    admin.patch(f"/admin/keys/{key['id']}", json={"rpm_limit": 70})
    assert limit(gateway) == "70"
    assert _eventually(lambda: limit(other_gateway) == "70")


# ---- the CLI -----------------------------------------------------------------------------------------


def test_cli_projects_and_key_lifecycle(cli_env, admin, gateway, capsys, database_url):
    t = _tenant(admin)
    main(["projects", "create", t["name"], "web", "--allowed-models", f"{MODEL},{OTHER}"])
    main(["keys", "create", t["name"], "--name", "ci", "--project", "web", "--metadata", "team=core",
          "--rpm", "30"])
    out = capsys.readouterr()
    secret = out.out.splitlines()[-1]
    assert "created project web" in out.out and secret.startswith("sk-sy-")
    key = admin.get(f"/admin/keys/{secret[:16]}").json()
    web = admin.get(f"/admin/tenants/{t['id']}/projects").json()["data"][0]
    assert key["project_id"] == web["id"] and key["metadata"] == {"team": "core"} and key["rpm_limit"] == 30
    assert _models(gateway.url, secret) == sorted([MODEL, OTHER])

    main(["projects", "update", t["name"], "web", "--allowed-models", MODEL])
    assert _eventually(lambda: _models(gateway.url, secret) == [MODEL])  # the CLI announced it
    main(["keys", "update", key["id"], "--name", "deploy", "--rpm", "none", "--clear-metadata",
          "--expires-at", "2099-01-01T00:00:00Z"])
    shown = admin.get(f"/admin/keys/{key['id']}").json()
    assert (shown["name"], shown["rpm_limit"], shown["metadata"]) == ("deploy", None, None)
    assert shown["expires_at"].startswith("2099-01-01")

    capsys.readouterr()
    main(["keys", "rotate", key["prefix"], "--grace-seconds", "0"])
    rotated = capsys.readouterr().out.splitlines()[-1]
    assert _eventually(lambda: _status(gateway.url, secret) == 401)
    assert _status(gateway.url, rotated) == 200
    main(["keys", "list", t["name"]])
    listed = capsys.readouterr().out
    assert rotated[:16] in listed and "expires 2099-01-01" in listed

    main(["keys", "revoke", rotated[:16]])
    assert _eventually(lambda: _status(gateway.url, rotated) == 401)
    for args in (["projects", "delete", t["name"], "web"], ["keys", "rotate", key["id"]],
                 ["keys", "update", key["id"]], ["projects", "create", t["name"], "web"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
    main(["projects", "create", t["name"], "spare"])
    main(["projects", "delete", t["name"], "spare"])
    rows = asyncio.run(fetch(database_url, "SELECT name FROM projects WHERE tenant_id = $1", uuid.UUID(t["id"])))
    assert [r["name"] for r in rows] == ["web"]
