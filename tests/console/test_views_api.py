"""The console's JSON views over the seeded month: equal to /v1/usage and /admin/usage, to the rows
themselves, and scoped to the session's tenant whatever the request asks for."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.console.conftest import ADMIN_TOKEN, RANGE
from tests.console.seed import Seed, direct, expected_savings, expected_spend

VIEWS = ("spend", "savings", "budgets", "top", "users", "requests")


def _usage(gateway: Any, key: str, group_by: str, **params: str) -> dict[str, Any]:
    response = httpx.get(gateway.url + "/v1/usage", params={**RANGE, "group_by": group_by, **params},
                         headers={"authorization": f"Bearer {key}"}, timeout=20)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("by", ["model", "front_end", "project", "key", "tag"])
def test_a_tenants_spend_equals_the_usage_api_and_the_rows(tenant_a: httpx.Client, gateway: Any, seeded: Seed,
                                                          by: str) -> None:
    view = tenant_a.get("/console/api/spend", params={**RANGE, "by": by}).json()
    usage = _usage(gateway, seeded.a.keys[0].key, f"day,{by}")
    name = {"project": "project_id", "key": "key_id"}.get(by, by)
    per_group: dict[str, Decimal] = {}
    per_day: dict[tuple[str, str], Decimal] = {}
    for row in usage["data"]:
        group = row[name] or ""
        per_group[group] = per_group.get(group, Decimal(0)) + Decimal(row["cost_usd"])
        per_day[(row["day"], group)] = Decimal(row["cost_usd"])
    assert {g["key"]: Decimal(g["billed_usd"]) for g in view["groups"]} == per_group
    for g in view["groups"]:
        for day, point in zip(view["days"], g["points"], strict=True):
            assert Decimal(point) == per_day.get((day, g["key"]), 0)
    assert view["total"]["billed_usd"] == usage["total"]["cost_usd"]
    assert view["total"]["requests"] == usage["total"]["requests"]
    events = seeded.a.in_range()
    assert Decimal(view["total"]["billed_usd"]) == sum(e.billed_usd for e in events)
    if by in ("model", "front_end", "tag"):
        assert per_group == expected_spend(events, by)
    # Ordered by spend, biggest first.
    amounts = [Decimal(g["billed_usd"]) for g in view["groups"]]
    assert amounts == sorted(amounts, reverse=True)


def test_savings_are_the_direct_baseline_less_what_was_billed(tenant_a: httpx.Client, seeded: Seed) -> None:
    view = tenant_a.get("/console/api/savings", params=RANGE).json()
    billed, baseline = expected_savings(seeded.a.in_range())
    total = view["total"]
    assert (Decimal(total["billed_usd"]), Decimal(total["direct_billed_usd"])) == (billed, baseline)
    assert Decimal(total["savings_usd"]) == baseline - billed > 0
    assert total["savings_percent"] == format(((baseline - billed) * 100 / baseline).quantize(Decimal("0.1")), "f")
    assert len(view["days"]) == 31 and sum(Decimal(d["billed_usd"]) for d in view["days"]) == billed
    for model_row in view["by_model"]:
        rows = [e for e in seeded.a.in_range() if e.served_model == model_row["model"]]
        assert Decimal(model_row["direct_billed_usd"]) == sum(direct(e) for e in rows)
        assert Decimal(model_row["billed_usd"]) == sum(e.billed_usd for e in rows)
    glm = next(r for r in view["by_model"] if r["model"] == "zai-org/GLM-4.6")
    assert Decimal(glm["savings_usd"]) == 0  # no direct price: counted at what it was billed


def test_budgets_show_their_spend_thresholds_and_alerts(tenant_a: httpx.Client, seeded: Seed) -> None:
    view = tenant_a.get("/console/api/budgets").json()
    budgets = {b["id"]: b for b in view["budgets"]}
    assert set(budgets) == {str(i) for i in seeded.a.budgets.values()}
    month = budgets[str(seeded.a.budgets["tenant-month"])]
    assert (month["level"], month["period"], month["limit_usd"], month["used_usd"], month["used_percent"]) == \
        ("tenant", "month", "50.0000000000", "30.0000000000", "60.0")
    assert [a["threshold_percent"] for a in month["alerts"]] == ["50"]
    day = budgets[str(seeded.a.budgets["project-day"])]
    assert day["project_name"] == "search-proj" and day["thresholds"] == ["25", "75"]
    assert sorted(a["threshold_percent"] for a in day["alerts"]) == ["25", "75"]
    assert all(a["type"] == "budget.threshold" and a["spent_usd"] == "4.5" for a in day["alerts"])
    rolling = budgets[str(seeded.a.budgets["key-rolling"])]
    shown = (rolling["window_hours"], rolling["hard"], rolling["alerts"], rolling["used_percent"])
    assert shown == (24, False, [], "12.5")
    # What a tenant sees of an alert names no webhook (the operator's is among the deliveries).
    assert "url" not in json.dumps(view) and "deliveries" not in json.dumps(view)


def test_top_keys_and_users_and_the_last_requests(tenant_a: httpx.Client, gateway: Any, seeded: Seed) -> None:
    top = tenant_a.get("/console/api/top", params=RANGE).json()
    by_key = {row["key_id"]: Decimal(row["cost_usd"]) for row in _usage(gateway, seeded.a.keys[0].key, "key")["data"]}
    assert {k["key_id"]: Decimal(k["billed_usd"]) for k in top["keys"]} == by_key
    assert "users" not in top  # end users are the ledger's: asked for apart
    users = _usage(gateway, seeded.a.keys[0].key, "user", limit="10")["data"]
    shown = tenant_a.get("/console/api/users", params=RANGE).json()["users"]
    assert [(u["user"], u["billed_usd"]) for u in shown] == [(u["user"], u["cost_usd"]) for u in users]
    assert {u["user"] for u in shown} == {*seeded.a.users, None}
    requests = tenant_a.get("/console/api/requests", params={**RANGE, "limit": "500"}).json()["requests"]
    rows = sorted(seeded.a.in_range(), key=lambda e: (e.started_at, e.request_id, e.attempt), reverse=True)
    assert [(r["request_id"], r["attempt"]) for r in requests] == [(e.request_id, e.attempt) for e in rows]
    first, event = requests[0], rows[0]
    assert (first["route"], first["prompt_tokens"], first["completion_tokens"], Decimal(first["billed_usd"])) == \
        (event.route, event.prompt_tokens, event.completion_tokens, event.billed_usd)
    assert len(tenant_a.get("/console/api/requests", params=RANGE).json()["requests"]) == 50


def test_a_tenant_reaches_nothing_of_another_tenant(tenant_a: httpx.Client, seeded: Seed) -> None:
    others = seeded.b.strings()
    for view in VIEWS:
        body = tenant_a.get(f"/console/api/{view}", params=RANGE).text
        assert not [s for s in others if s in body], view
        for ref in (str(seeded.b.id), seeded.b.name, str(seeded.a.id)):
            refused = tenant_a.get(f"/console/api/{view}", params={**RANGE, "tenant": ref})
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "tenant"
        for name, value in (("project", str(next(iter(seeded.b.projects.values())))), ("key", seeded.b.keys[0].prefix),
                            ("tenant_id", str(seeded.b.id))):
            refused = tenant_a.get(f"/console/api/{view}", params={**RANGE, name: value})
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "unknown_parameter"
    assert tenant_a.get("/console/api/tenants").status_code == 403


def test_the_operator_sees_every_tenant_or_the_one_it_picks(operator: httpx.Client, gateway: Any,
                                                            seeded: Seed) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    names = {t["name"] for t in operator.get("/console/api/tenants").json()["data"]}
    assert {seeded.a.name, seeded.b.name} <= names
    every = operator.get("/console/api/spend", params={**RANGE, "by": "project"}).json()
    usage = httpx.get(gateway.url + "/admin/usage", params={**RANGE, "group_by": "tenant"}, headers=admin,
                      timeout=20).json()
    assert every["total"]["billed_usd"] == usage["total"]["billed_usd"]
    labels = {g["label"] for g in every["groups"]}
    assert f"{seeded.a.name} · search-proj" in labels and f"{seeded.b.name} · hidden-proj" in labels
    for ref in (str(seeded.b.id), seeded.b.name):
        picked = operator.get("/console/api/spend", params={**RANGE, "tenant": ref, "by": "tag"}).json()
        assert Decimal(picked["total"]["billed_usd"]) == sum(e.billed_usd for e in seeded.b.in_range())
        assert {g["key"] for g in picked["groups"]} == {"globex-secret-tag", ""}
    tags = operator.get("/console/api/spend", params={**RANGE, "by": "tag"})
    assert tags.status_code == 400 and tags.json()["error"]["code"] == "tenant_required"
    unknown = operator.get("/console/api/savings", params={**RANGE, "tenant": "no-such-tenant"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "tenant_not_found"
    top = operator.get("/console/api/top", params=RANGE).json()
    assert {k["tenant_name"] for k in top["keys"]} >= {seeded.a.name, seeded.b.name}
    users = operator.get("/console/api/users", params=RANGE)
    assert users.status_code == 400 and users.json()["error"]["code"] == "tenant_required"
    picked_users = operator.get("/console/api/users", params={**RANGE, "tenant": seeded.b.name}).json()["users"]
    assert {u["user"] for u in picked_users} == {*seeded.b.users, None}
    budgets = operator.get("/console/api/budgets").json()["budgets"]
    assert {str(i) for t in (seeded.a, seeded.b) for i in t.budgets.values()} <= {b["id"] for b in budgets}


@pytest.mark.parametrize(("params", "param"), [
    ({"from": "2025-03-31", "to": "2025-03-01"}, "to"),
    ({"from": "March"}, "from"),
    ({"from": "2024-01-01", "to": "2025-03-31"}, "to"),
    ({"by": "colour"}, "by"),
    ({"by": ""}, "by"),
])
def test_bad_parameters_are_400s_naming_them(tenant_a: httpx.Client, params: dict[str, str], param: str) -> None:
    response = tenant_a.get("/console/api/spend", params=params)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_the_page_and_its_assets(gateway: Any) -> None:
    page = httpx.get(gateway.url + "/console", timeout=20)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    # Everything the page refers to is served here.
    refs = re.findall(r'"(/console/static/[^"?]+)\?v=([0-9a-f]{16})"', page.text)
    assert {ref for ref, _ in refs} == {"/console/static/uPlot.iife.min.js", "/console/static/dom.js",
                                        "/console/static/views.js", "/console/static/console.js",
                                        "/console/static/console.css", "/console/static/uPlot.min.css"}
    for ref, version in refs:
        asset = httpx.get(f"{gateway.url}{ref}?v={version}", timeout=20)
        assert asset.status_code == 200 and len(asset.content) > 500
        # Named by its content's hash: kept for good; under any other name, revalidated.
        assert version == hashlib.sha256(asset.content).hexdigest()[:16]
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert httpx.get(gateway.url + ref, timeout=20).headers["cache-control"] == "no-cache"
    assert "http://" not in page.text and "https://" not in page.text
    for missing in ("/console/static/nope.js", "/console/static/..%2F..%2Fapp.py", "/console/static/index.html"):
        assert httpx.get(gateway.url + missing, timeout=20).status_code == 404
