"""Admin inputs the fuzzer found handled wrong: each answer is what the published schema promises."""

from __future__ import annotations

import httpx
import pytest

from tests.support import create_tenant_with_key

ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}  # tests.support.gateway_env's


@pytest.fixture
def admin(gateway):
    with httpx.Client(base_url=gateway.url, headers=ADMIN, timeout=20) as c:
        yield c


@pytest.mark.parametrize("url", [
    "http://[zz]/",  # a bracketed host that is no address: urlsplit raised, the answer was a 500
    "http://0*",  # not a host name: it was stored as a webhook
    "http://a/\u00e9",  # a URL's path is ASCII (percent-encode the rest)
    "http://a:65536/",
])
def test_a_webhook_url_outside_the_documented_form_is_a_400(admin, database_url, url):
    tenant = create_tenant_with_key(database_url)
    answer = admin.put(f"/admin/tenants/{tenant.tenant_id}/alerts/webhook", json={"url": url})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_url"
    assert answer.json()["error"]["param"] == "url"


def test_a_public_ipv6_webhook_is_still_accepted(admin, database_url):
    tenant = create_tenant_with_key(database_url)
    answer = admin.put(f"/admin/tenants/{tenant.tenant_id}/alerts/webhook",
                       json={"url": "http://[2606:4700:4700::1111]:8443/x?y=1"})
    assert answer.status_code == 201, answer.text


def test_a_whole_float_grace_period_is_that_many_seconds(admin, database_url):
    # JSON Schema's integer 465 includes 465.0; the API refused it.
    tenant = create_tenant_with_key(database_url)
    rotated = admin.post(f"/admin/keys/{tenant.key_prefix}/rotate", json={"grace_seconds": 465.0})
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["previous_prefix"] == tenant.key_prefix


@pytest.mark.parametrize("where", ["keys", "rotate", "reset"])
def test_an_optional_body_is_absent_or_json_and_whitespace_is_neither(admin, database_url, where):
    # The fuzzer sent "\n" as application/json: not JSON text (RFC 8259), yet taken as no body.
    tenant = create_tenant_with_key(database_url)
    url = {"keys": f"/admin/tenants/{tenant.tenant_id}/keys", "rotate": f"/admin/keys/{tenant.key_prefix}/rotate",
           "reset": "/admin/routes/reset"}[where]
    json_type = {"Content-Type": "application/json"}
    for blank in (b"\n", b"  \r\n\t"):
        refused = admin.post(url, content=blank, headers=json_type)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_json"
    assert admin.post(url, content=b"", headers=json_type).status_code in (200, 201)  # no body: the defaults
