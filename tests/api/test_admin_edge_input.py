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
