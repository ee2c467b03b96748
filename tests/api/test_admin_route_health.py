"""GET /admin/routes and POST /admin/routes/reset over real HTTP: a circuit opened by a real
upstream refusal shows, a reset closes it on this process, and the route serves again at once."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.reliability.fault_control import arm

ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}  # tests.support.gateway_env's
ONLY_BASETEN = "deepseek-ai/DeepSeek-V4-Flash-0731"  # one route: its failure is not hidden by a fallback
ROUTE = f"baseten:{ONLY_BASETEN}"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=20) as c:
        yield c


def _routes(http: httpx.Client) -> dict[str, dict]:
    answer = http.get("/admin/routes", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list"
    assert body["scope"] == "process"
    assert isinstance(body["process_id"], int)
    return {r["route"]: r for r in body["data"]}


def _open_the_circuit(standins, client: openai.OpenAI) -> None:
    # A 429 with Retry-After opens the route's circuit for that long at once.
    arm(standins, "status:429:string,retry_after:60", model=ONLY_BASETEN)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=ONLY_BASETEN, messages=HELLO)


def test_every_catalog_route_is_listed_closed_with_its_capacity(gateway, http):
    routes = _routes(http)
    assert set(routes) == {r.name for r in gateway.runtime.catalog.routes}
    for route in routes.values():
        assert route["circuit"] == "closed"
        assert route["recent_failures"] == 0
        assert route["open_for_seconds"] == 0
    xpay = [r for r in routes.values() if r["front_end"] == "xpay"]
    assert xpay, "the stand-ins serve xpay routes"
    # Every xpay route shares the marketplace key's slots.
    assert {r["capacity"]["group"] for r in xpay} == {"xpay"}
    assert routes[ROUTE]["capacity"]["group"] == ROUTE


def test_a_held_slot_shows_as_capacity_in_use(gateway, http):
    xpay_route = next(r for r in gateway.runtime.catalog.routes if r.front_end == "xpay")
    slot = gateway.runtime.capacity.acquire_slot("xpay", xpay_route.name)
    assert slot is not None
    try:
        shown = _routes(http)[xpay_route.name]["capacity"]
        assert shown["route_in_flight"] == 1
        assert shown["group_in_flight"] == 1
    finally:
        gateway.runtime.capacity.release_slot(slot)
    assert _routes(http)[xpay_route.name]["capacity"]["group_in_flight"] == 0


def test_an_open_circuit_shows_and_a_reset_of_that_route_closes_it(standins, client, http):
    _open_the_circuit(standins, client)
    shown = _routes(http)[ROUTE]
    assert shown["circuit"] == "open"
    assert shown["recent_failures"] == 1
    assert shown["recent_attempts"] == 1
    assert 50 < shown["open_for_seconds"] <= 60
    # While open, the model has no route: refused without calling the upstream.
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model=ONLY_BASETEN, messages=HELLO)

    reset = http.post("/admin/routes/reset", headers=ADMIN, json={"route": ROUTE})
    assert reset.status_code == 200, reset.text
    body = reset.json()
    assert body["scope"] == "process"
    assert [r["route"] for r in body["data"]] == [ROUTE]
    assert body["data"][0]["circuit"] == "closed"
    assert body["data"][0]["recent_failures"] == 0
    assert client.chat.completions.create(model=ONLY_BASETEN, messages=HELLO).choices[0].message.content


def test_a_reset_without_a_route_closes_every_circuit(standins, client, http):
    _open_the_circuit(standins, client)
    reset = http.post("/admin/routes/reset", headers=ADMIN)
    assert reset.status_code == 200, reset.text
    assert {r["circuit"] for r in reset.json()["data"]} == {"closed"}
    assert _routes(http)[ROUTE]["circuit"] == "closed"


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    ({"route": "baseten:no-such-model"}, 404, "route_not_found", "route"),
    ({"route": 7}, 400, "invalid_value", "route"),
    ({"route": "x\x00"}, 400, "invalid_value", "route"),
    ({"routes": ROUTE}, 400, "unknown_parameter", "routes"),
    ([ROUTE], 400, "invalid_json", None),
])
def test_a_bad_reset_is_refused_in_openai_shape(http, body, status, code, param):
    answer = http.post("/admin/routes/reset", headers=ADMIN, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)


@pytest.mark.parametrize(("method", "path"), [("GET", "/admin/routes"), ("POST", "/admin/routes/reset")])
def test_the_route_endpoints_need_the_admin_token(http, method, path):
    assert http.request(method, path).status_code == 401
    assert http.request(method, path, headers={"Authorization": "Bearer wrong"}).status_code in (401, 403)


def test_a_quoted_route_shows_what_its_charges_have_taught(gateway, http, client):
    route = "orthogonal:openai/gpt-oss-120b"
    before = _routes(http)[route]["quotes"]
    client.chat.completions.create(model="openai/gpt-oss-120b", messages=HELLO,
                                   extra_body={"provider": {"only": ["orthogonal"]}})
    shown = _routes(http)[route]["quotes"]
    assert shown["observed"] == (before["observed"] if before else 0) + 1
    assert shown["bias"] > 0 and 0 < shown["trust"] <= 1
    # One call cannot tell a prompt's price from an answer's: the terms stay unknown.
    assert (shown["input_per_mtok"], shown["output_per_mtok"]) == (None, None)
    assert all(r["quotes"] is None for r in _routes(http).values() if r["front_end"] == "xpay")
