"""Hostile requests over real HTTP: none is answered with a 5xx, every error is OpenAI's error
object, and the gateway still serves a valid request afterwards."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from service.errors import MAX_PARAM_CHARS, is_permanent
from tests.conftest import LiveGateway
from tests.reliability.bad_http import assert_still_serving, error_object
from tests.reliability.hostile_corpus import BODY_LIMIT, MODEL, Case, corpus

ADMIN_TOKEN = "test-admin-token-0123456789"  # tests.support.gateway_env's
BODY_TIMEOUT = 1.0
CASES = corpus()


@pytest.fixture(scope="module")
def hostile_gateway(standins, database_url):
    gw = LiveGateway(standins, database_url, SWITCHYARD_MAX_BODY_BYTES=str(BODY_LIMIT),
                     SWITCHYARD_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def target_tenant(hostile_gateway) -> str:
    response = httpx.post(hostile_gateway.url + "/admin/tenants", json={"name": "hostile-target"},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def http(hostile_gateway):
    with httpx.Client(base_url=hostile_gateway.url, timeout=30) as client:
        yield client


def test_the_corpus_is_large_and_its_ids_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 150


def _send(http: httpx.Client, case: Case, tenant_key: str, tenant_id: str) -> httpx.Response:
    headers = dict(case.headers)
    if case.auth == "tenant":
        headers.setdefault("authorization", f"Bearer {tenant_key}")
    elif case.auth == "admin":
        headers.setdefault("authorization", f"Bearer {ADMIN_TOKEN}")
    path = case.path.replace("{tenant}", tenant_id)
    return http.request(case.method, path, content=case.body, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_request(http, tenant, target_tenant, case):
    response = _send(http, case, tenant.key, target_tenant)
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert response.status_code in expected, (response.status_code, response.text[:500])
    assert response.status_code < 500
    assert response.headers.get("x-request-id")
    if response.status_code >= 400:
        error = error_object(response.headers.get("content-type", ""), response.json())
        if case.code is not None:
            assert error["code"] == case.code, error
        if case.param is not None:
            assert error["param"] == case.param, error
        # Whatever the client chose is echoed (and logged) only in bounded pieces.
        assert error["param"] is None or len(error["param"]) <= MAX_PARAM_CHARS + 1
        assert len(error["message"]) < 2000
        if is_permanent(response.status_code):
            assert response.headers.get("x-should-retry") == "false"
    if case.status == 204:
        assert response.content == b""


def _stalled_body(url: str, head: bytes, sent: bytes) -> tuple[float, bytes]:
    """Declare a longer body than is sent, then wait: (seconds to the answer, the answer)."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(head + b"Content-Length: %d\r\n\r\n" % (len(sent) + 5000) + sent)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return time.monotonic() - started, answer


@pytest.mark.parametrize(
    ("path", "auth", "method"),
    [("/v1/chat/completions", "tenant", b"POST"), ("/v1/quote", "tenant", b"POST"),
     ("/admin/tenants", "admin", b"POST"), ("/admin/tenants/{tenant}/budgets", "admin", b"PUT"),
     ("/admin/tenants/{tenant}/keys", "admin", b"POST")],
    ids=["chat", "quote", "tenant-create", "budget-put", "key-create"],
)
def test_a_body_that_stops_arriving_gets_a_408_in_bounded_time(hostile_gateway, tenant, target_tenant,
                                                               path, auth, method):
    token = tenant.key if auth == "tenant" else ADMIN_TOKEN
    head = (method + b" " + path.replace("{tenant}", target_tenant).encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer " + token.encode() + b"\r\n")
    elapsed, answer = _stalled_body(hostile_gateway.url, head, b'{"model":"%s","messages":[' % MODEL.encode())
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:300]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    error = error_object("application/json", orjson.loads(body))
    assert error["code"] == "request_timeout"
    # The bound is the setting (1 s here), not the client: answered and closed soon after it.
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 3


def test_a_slow_body_that_keeps_arriving_is_not_cut(hostile_gateway, tenant):
    """The bound is between two pieces, as nginx's client_body_timeout: a slow upload still lands."""
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                         "provider": {"only": ["baseten"]}})
    parts = urlsplit(hostile_gateway.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + tenant.key.encode() + b"\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        third = len(body) // 3
        for piece in (body[:third], body[third:2 * third], body[2 * third:]):
            s.sendall(piece)
            time.sleep(BODY_TIMEOUT * 0.7)  # 2.1 s in all: longer than the bound, no gap as long
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_the_gateway_still_serves_after_the_corpus(hostile_gateway, tenant, http, target_tenant):
    for case in CASES[::7]:  # the corpus again, interleaved with valid requests
        _send(http, case, tenant.key, target_tenant)
    assert_still_serving(hostile_gateway.url, tenant.key)
    # And the admin API still answers on the database the corpus poked at.
    listed = http.get("/admin/tenants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert listed.status_code == 200 and any(t["id"] == target_tenant for t in listed.json()["data"])


@pytest.mark.parametrize(
    ("path", "allow"),
    [("/admin/tenants", "GET, OPTIONS, POST"), ("/admin/tenants/x", "GET, OPTIONS, PATCH"),
     ("/admin/tenants/x/keys", "GET, OPTIONS, POST"), ("/admin/tenants/x/budgets", "GET, OPTIONS, PUT"),
     ("/admin/keys/x", "DELETE, GET, OPTIONS, PATCH"), ("/v1/chat/completions", "OPTIONS, POST"),
     ("/v1/models/openai/gpt-oss-120b", "GET, OPTIONS")],
)
def test_options_lists_every_method_of_the_path(http, path, allow):
    response = http.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == allow


def test_a_wrong_method_names_every_allowed_one(http):
    response = http.delete("/admin/tenants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 405
    assert sorted(m.strip() for m in response.headers["allow"].split(",")) == ["GET", "OPTIONS", "POST"]
    error_object(response.headers["content-type"], response.json())


@pytest.mark.parametrize(
    ("path", "auth", "content_type"),
    [("/metrics", "none", "text/plain; version=0.0.4; charset=utf-8"),
     ("/v1/usage/export?format=csv", "tenant", "text/csv; charset=utf-8"),
     ("/v1/usage/export?format=jsonl", "tenant", "application/x-ndjson"),
     ("/admin/billing/export?period=2024-01", "admin", "text/csv; charset=utf-8")],
)
def test_text_answers_name_their_charset_once(http, tenant, path, auth, content_type):
    token = {"tenant": tenant.key, "admin": ADMIN_TOKEN}.get(auth)
    response = http.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


def test_the_last_billing_period_is_served_whole(http):
    # 9999-11 is the last month whose end is a date; the export is a complete answer, not a cut one.
    response = http.get("/admin/billing/export?period=9999-11&format=jsonl",
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200
    assert orjson.loads(response.content.splitlines()[-1])["total"]["requests"] == 0
