"""/metrics on the public port: behind a bearer token when one is set, absent when a separate
metrics port serves it (tests/scale/test_serve_metrics.py drives that listener)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveGateway

TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(standins, database_url):
    gw = LiveGateway(standins, database_url, SWITCHYARD_METRICS_TOKEN=TOKEN)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def moved(standins, database_url):
    gw = LiveGateway(standins, database_url, SWITCHYARD_METRICS_PORT="9")  # served by `serve`'s master
    yield gw
    gw.stop()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}",
                                           f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", TOKEN])
def test_a_token_guards_the_public_metrics(guarded, authorization):
    headers = {"authorization": authorization} if authorization else {}
    r = httpx.get(guarded.url + "/metrics", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "authentication_error"
    assert "switchyard_" not in r.text


def test_the_right_token_reads_the_metrics(guarded):
    r = httpx.get(guarded.url + "/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert "switchyard_build_info" in r.text


def test_with_a_metrics_port_the_public_port_has_no_metrics(moved):
    r = httpx.get(moved.url + "/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404
    assert "switchyard_" not in r.text
    assert httpx.get(moved.url + "/healthz").status_code == 200


def test_without_either_setting_metrics_stay_public(gateway):
    assert httpx.get(gateway.url + "/metrics").status_code == 200
