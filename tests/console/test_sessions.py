"""Console sessions over HTTP: the cookie, what the database keeps, CSRF and origin checks, sign-out,
and sessions ending the moment their key (or the admin token) stops vouching for them, on every
gateway process sharing the database."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import asyncpg
import httpx
import pytest

from tests.console.conftest import ADMIN_TOKEN, CSRF_HEADER, sign_in
from tests.console.seed import Seed
from tests.support import create_tenant_with_key, fetch

OTHER_ADMIN_TOKEN = "another-admin-token-abcdef0123"


def _set_cookie(response: httpx.Response) -> tuple[str, dict[str, str], str]:
    header = response.headers["set-cookie"]
    morsel = SimpleCookie(header)["switchyard_console"]
    return morsel.value, {k.lower(): v for k, v in morsel.items() if v}, header


@pytest.fixture(scope="module")
def second_gateway(standins: Any, database_url: str) -> Any:
    """Another gateway process on the same database, with an admin token of its own."""
    from tests.conftest import LiveGateway

    gw = LiveGateway(standins, database_url, SWITCHYARD_ADMIN_TOKEN=OTHER_ADMIN_TOKEN)
    yield gw
    gw.stop()


def _post_sign_in(base_url: str, body: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.post(base_url + "/console/api/session", json=body, headers={CSRF_HEADER: "sign-in", **headers},
                      timeout=20)


async def test_the_cookie_is_httponly_strict_and_only_its_hash_is_stored(gateway: Any, seeded: Seed,
                                                                          database_url: str) -> None:
    key = seeded.a.keys[0]
    response = _post_sign_in(gateway.url, {"api_key": key.key})
    assert response.status_code == 200, response.text
    value, attrs, header = _set_cookie(response)
    assert attrs["httponly"] is True and attrs["samesite"] == "strict" and attrs["path"] == "/console"
    # A session cookie: no lifetime of its own (the browser drops it on close), not Secure over plain HTTP.
    assert "secure" not in attrs and "max-age" not in attrs and "expires" not in attrs, header
    body = response.json()
    assert body["kind"] == "tenant" and body["tenant"] == {"id": str(seeded.a.id), "name": seeded.a.name}
    assert body["key_prefix"] == key.prefix and key.key not in response.text and value not in response.text
    rows = await fetch(database_url, "SELECT s.*, s::text AS whole FROM console_sessions s WHERE id_hash = $1",
                       hashlib.sha256(value.encode()).digest())
    assert len(rows) == 1 and rows[0]["key_id"] == key.id and rows[0]["tenant_id"] == seeded.a.id
    # Neither the session id nor the key is kept in any column.
    leaked = await fetch(database_url, "SELECT count(*) FROM console_sessions s WHERE strpos(s::text, $1) > 0"
                         " OR strpos(s::text, $2) > 0", value, key.key)
    assert leaked[0]["count"] == 0
    assert rows[0]["expires_at"] - rows[0]["created_at"] <= timedelta(hours=8)


def test_the_cookie_is_secure_when_served_over_tls(gateway: Any, seeded: Seed) -> None:
    response = _post_sign_in(gateway.url, {"api_key": seeded.a.keys[0].key}, **{"x-forwarded-proto": "https"})
    assert response.status_code == 200
    _, attrs, _ = _set_cookie(response)
    assert attrs["secure"] is True and attrs["httponly"] is True and attrs["samesite"] == "strict"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"api_key": "sk-sy-" + "x" * 43}, 401, "invalid_api_key"),
    ({"api_key": "not-a-key"}, 401, "invalid_api_key"),
    ({"admin_token": "wrong-admin-token-000000"}, 401, "invalid_admin_token"),
    ({"api_key": "", }, 400, "invalid_value"),
    ({"api_key": "a", "admin_token": "b"}, 400, "missing_required_parameter"),
    ({"password": "x"}, 400, "unknown_parameter"),
])
def test_bad_credentials_are_refused_without_a_cookie(gateway: Any, body: dict[str, str], status: int,
                                                       code: str) -> None:
    response = _post_sign_in(gateway.url, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "set-cookie" not in response.headers


def test_sign_in_needs_the_anti_csrf_header_and_our_own_origin(gateway: Any, seeded: Seed) -> None:
    good = {"api_key": seeded.a.keys[0].key}
    no_header = httpx.post(gateway.url + "/console/api/session", json=good, timeout=20)
    assert no_header.status_code == 403 and no_header.json()["error"]["code"] == "csrf_failed"
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site"}, {"origin": "null"}):
        response = _post_sign_in(gateway.url, good, **headers)
        assert response.status_code == 403, headers
        assert response.json()["error"]["code"] == "cross_origin_refused" and "set-cookie" not in response.headers
    host = gateway.url.removeprefix("http://")
    same = _post_sign_in(gateway.url, good, origin=f"http://{host}", **{"sec-fetch-site": "same-origin"})
    assert same.status_code == 200


def test_sign_out_needs_the_session_token_then_ends_the_session(gateway: Any, seeded: Seed) -> None:
    client = sign_in(gateway.url, {"api_key": seeded.a.keys[1].key})
    token = client.headers.pop(CSRF_HEADER)
    cookie = client.cookies["switchyard_console"]
    try:
        assert client.delete("/console/api/session").status_code == 403
        assert client.delete("/console/api/session", headers={CSRF_HEADER: "sign-in"}).status_code == 403
        other = client.delete("/console/api/session", headers={CSRF_HEADER: token, "origin": "http://evil.example"})
        assert other.status_code == 403
        assert client.get("/console/api/session").status_code == 200  # none of those signed it out
        out = client.delete("/console/api/session", headers={CSRF_HEADER: token})
        assert out.status_code == 200 and out.json()["signed_out"] is True
        _, attrs, _ = _set_cookie(out)
        assert attrs["max-age"] == "0"
        # The old cookie, replayed, names nothing any more.
        replay = httpx.get(gateway.url + "/console/api/spend", cookies={"switchyard_console": cookie}, timeout=20)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "console_signed_out"
    finally:
        client.close()


def test_views_refuse_requests_a_browser_marks_as_cross_site(tenant_a: httpx.Client) -> None:
    assert tenant_a.get("/console/api/spend").status_code == 200
    for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "http://evil.example"}):
        response = tenant_a.get("/console/api/spend", headers=headers)
        assert response.status_code == 403 and response.json()["error"]["code"] == "cross_origin_refused"


def test_without_a_session_every_view_is_401(gateway: Any) -> None:
    for view in ("session", "tenants", "spend", "savings", "budgets", "top", "requests"):
        response = httpx.get(f"{gateway.url}/console/api/{view}", timeout=20)
        assert response.status_code == 401, view
        forged = httpx.get(f"{gateway.url}/console/api/{view}", cookies={"switchyard_console": "x" * 43}, timeout=20)
        assert forged.status_code == 401 and "max-age=0" in forged.headers["set-cookie"].lower()


async def _new_key(database_url: str, tenant_id: Any) -> tuple[str, Any]:
    from service.auth import tenants

    conn = await asyncpg.connect(database_url)
    try:
        return await tenants.create_key(conn, tenant_id, name="console-revoke")
    finally:
        await conn.close()


def test_a_session_works_on_every_process_and_ends_with_its_key(gateway: Any, second_gateway: Any,
                                                                seeded: Seed, database_url: str) -> None:
    secret, key = asyncio.run(_new_key(database_url, seeded.a.id))
    client = sign_in(gateway.url, {"api_key": secret})
    cookie = {"switchyard_console": client.cookies["switchyard_console"]}
    try:
        # Signed in on one process, read on another: the session is in the shared database.
        on_second = httpx.get(second_gateway.url + "/console/api/session", cookies=cookie, timeout=20)
        assert on_second.status_code == 200 and on_second.json()["tenant"]["id"] == str(seeded.a.id)
        revoked = httpx.delete(f"{second_gateway.url}/admin/keys/{key.id}", timeout=20,
                               headers={"authorization": f"Bearer {OTHER_ADMIN_TOKEN}"})
        assert revoked.status_code == 200
        # At once, on the process that did not revoke it.
        assert client.get("/console/api/spend").status_code == 401
        assert httpx.get(second_gateway.url + "/console/api/spend", cookies=cookie, timeout=20).status_code == 401
        rows = asyncio.run(fetch(database_url, "SELECT count(*) FROM console_sessions WHERE key_id = $1", key.id))
        assert rows[0]["count"] == 0  # the dead session was deleted, not just refused
    finally:
        client.close()


def test_expiry_rotation_and_a_disabled_tenant_end_sessions(gateway: Any, second_gateway: Any,
                                                            database_url: str) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    t = create_tenant_with_key(database_url)

    def new_key() -> tuple[str, str]:
        response = httpx.post(f"{gateway.url}/admin/tenants/{t.tenant_id}/keys", json={}, headers=admin, timeout=20)
        return response.json()["key"], response.json()["id"]

    changes = [
        lambda key_id: httpx.patch(f"{gateway.url}/admin/keys/{key_id}", headers=admin, timeout=20,
                                   json={"expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}),
        lambda key_id: httpx.post(f"{gateway.url}/admin/keys/{key_id}/rotate", headers=admin, timeout=20,
                                  json={"grace_seconds": 0}),
    ]
    for change in changes:
        secret, key_id = new_key()
        with sign_in(second_gateway.url, {"api_key": secret}) as client:
            assert client.get("/console/api/savings").status_code == 200
            assert change(key_id).status_code in (200, 201)
            assert client.get("/console/api/savings").status_code == 401
    # A rotation with a grace period keeps the old secret's session until the grace period ends.
    secret, key_id = new_key()
    with sign_in(gateway.url, {"api_key": secret}) as client:
        rotated = httpx.post(f"{gateway.url}/admin/keys/{key_id}/rotate", headers=admin, json={"grace_seconds": 3600},
                             timeout=20)
        assert rotated.status_code == 201 and client.get("/console/api/savings").status_code == 200
        with sign_in(gateway.url, {"api_key": t.key}) as first_key:
            disabled = httpx.patch(f"{gateway.url}/admin/tenants/{t.tenant_id}", json={"status": "disabled"},
                                   headers=admin, timeout=20)
            assert disabled.status_code == 200
            assert client.get("/console/api/savings").status_code == 401
            assert first_key.get("/console/api/savings").status_code == 401


async def test_sessions_expire_and_idle_out(gateway: Any, seeded: Seed, database_url: str) -> None:
    for column, moved in (("expires_at", "now() - interval '1 second'"),
                          ("last_seen_at", "now() - interval '61 minutes'")):
        with sign_in(gateway.url, {"api_key": seeded.a.keys[2].key}) as client:
            id_hash = hashlib.sha256(client.cookies["switchyard_console"].encode()).digest()
            assert client.get("/console/api/top").status_code == 200
            # The clock moved on (the constraint wants expiry after creation, so move both).
            await fetch(database_url, f"UPDATE console_sessions SET created_at = now() - interval '9 hours',"
                        f" {column} = {moved} WHERE id_hash = $1 RETURNING 1", id_hash)
            assert client.get("/console/api/top").status_code == 401
            rows = await fetch(database_url, "SELECT 1 FROM console_sessions WHERE id_hash = $1", id_hash)
            assert rows == []


def test_an_operator_session_needs_the_admin_token_it_signed_in_with(gateway: Any, second_gateway: Any) -> None:
    with sign_in(gateway.url, {"admin_token": ADMIN_TOKEN}) as client:
        cookie = {"switchyard_console": client.cookies["switchyard_console"]}
        assert client.get("/console/api/tenants").status_code == 200
        # The other process's admin token is another one: as if the operator had changed it.
        elsewhere = httpx.get(second_gateway.url + "/console/api/tenants", cookies=cookie, timeout=20)
        assert elsewhere.status_code == 401
        assert client.get("/console/api/tenants").status_code == 401  # and the session is gone for good
