"""The tenant's own usage reads (/v1/usage, its exports), the billing export and the CLI, against sums of
the ledger rows themselves, over the known ledger of tests/metering/usage_ledger.py."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import httpx
import pytest

from service.cli import main
from tests.metering.usage_ledger import COUNTS, RANGE, Org, expected, got, selected, tenant_view


def _v1(gateway, org: Org, path: str = "/v1/usage", **params: str) -> httpx.Response:
    return httpx.get(gateway.url + path, params={**RANGE, **params},
                     headers={"authorization": f"Bearer {org.key}"}, timeout=30)


def test_v1_usage_groups_and_filters_within_the_callers_tenant(gateway, attributed):
    a, b = attributed.orgs
    for org in (a, b):
        r = _v1(gateway, org, group_by="project,key,tag,user")
        assert r.status_code == 200, r.text
        keys = ["project", "key", "tag", "user"]
        groups, total = expected(attributed.in_range(), keys, {"tenant": org.tenant.id})
        assert got(r.json()["data"], keys, ("cost_usd",)) == tenant_view(groups)
        assert Decimal(r.json()["total"]["cost_usd"]) == total["billed_usd"]
        assert all("provider_cost_usd" not in row and "tenant_id" not in row for row in r.json()["data"])
    # Names resolve within the caller's tenant only.
    r = _v1(gateway, a, group_by="key", project="web", tag="green")
    groups, _ = expected(attributed.in_range(), ["key"], {"tenant": a.tenant.id, "project": a.projects[0].id,
                                                          "tag": "green"})
    assert got(r.json()["data"], ["key"], ("cost_usd",)) == tenant_view(groups)
    names = {row["key_id"]: (row["key_prefix"], row["key_name"]) for row in r.json()["data"]}
    assert all(names[str(k.id)] == (k.prefix, k.name) for k in a.keys if str(k.id) in names)
    # The default keeps the old shape: per day, model and front end.
    default = _v1(gateway, a).json()
    assert default["group_by"] == ["day", "model", "front_end"]
    columns = {"day", "model", "front_end", *COUNTS, "cost_usd", "direct_cost_usd", "savings_usd"}
    assert set(default["data"][0]) == columns


@pytest.mark.parametrize("params", [
    {"tenant": "x"}, {"group_by": "tenant"}, {"group_by": "day,colour"},
    {"project": "other-tenant"}, {"key": "other-tenant"},
])
def test_v1_usage_never_reaches_another_tenant(gateway, attributed, params):
    a, b = attributed.orgs
    swapped = {k: (str(b.projects[0].id) if k == "project" else b.keys[0].prefix) if v == "other-tenant" else v
               for k, v in params.items()}
    r = _v1(gateway, a, **swapped)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == next(iter(params))


def test_v1_grouped_export_equals_the_summary(gateway, attributed):
    a = attributed.orgs[1]
    summary = _v1(gateway, a, group_by="tag,user", limit="10000").json()
    lines = [json.loads(x) for x in _v1(gateway, a, "/v1/usage/export", group_by="tag,user",
                                        format="jsonl").text.splitlines()]
    *rows, last = lines
    assert rows == summary["data"] and last == {"total": summary["total"]}
    text = _v1(gateway, a, "/v1/usage/export", group_by="tag,user", format="csv").text
    *parsed, total = list(csv.DictReader(io.StringIO(text)))
    assert tuple(parsed[0]) == ("tag", "user", *COUNTS, "cost_usd", "direct_cost_usd", "savings_usd")
    assert [(r["tag"] or None, r["user"] or None, r["cost_usd"]) for r in parsed] == [
        (r["tag"], r["user"], r["cost_usd"]) for r in rows]
    assert total["tag"] == "TOTAL" and total["cost_usd"] == summary["total"]["cost_usd"]


def test_v1_ledger_export_filters_and_carries_attribution(gateway, attributed):
    a = attributed.orgs[0]
    rows = list(csv.DictReader(io.StringIO(_v1(gateway, a, "/v1/usage/export", tag="red", user="u1",
                                               format="csv").text)))
    mine = sorted(selected(attributed.in_range(), {"tenant": a.tenant.id, "tag": "red", "user": "u1"}),
                  key=lambda e: (e.started_at, e.request_id, e.attempt))
    assert mine and [(r["request_id"], int(r["attempt"])) for r in rows] == [(e.request_id, e.attempt) for e in mine]
    prefixes = {k.id: k.prefix for k in a.keys}
    for row, e in zip(rows, mine, strict=True):
        assert row["tags"] == ",".join(e.tags) and row["end_user"] == "u1"
        assert row["project_id"] == (str(e.project_id) if e.project_id else "")
        assert row["key_prefix"] == (prefixes[e.key_id] if e.key_id else "")
        assert (json.loads(row["metadata"]) if row["metadata"] else None) == e.metadata
    lines = [json.loads(x) for x in _v1(gateway, a, "/v1/usage/export", key=a.keys[1].prefix,
                                        format="jsonl").text.splitlines()]
    expected_rows = selected(attributed.in_range(), {"tenant": a.tenant.id, "key": a.keys[1].id})
    assert sorted(x["request_id"] + str(x["attempt"]) for x in lines) == sorted(
        e.request_id + str(e.attempt) for e in expected_rows)
    assert all(isinstance(x["tags"], list) and x["key_id"] == str(a.keys[1].id) for x in lines)


# ---- billing export and the CLI --------------------------------------------------------------------------

def test_billing_export_groups_and_filters(http, attributed):
    a = attributed.orgs[0]
    r = http.get("/admin/billing/export", params={"period": "2024-04", "format": "jsonl",
                                                   "group_by": "project,tag", "tenant": a.tenant.name})
    assert r.status_code == 200, r.text
    *rows, last = [json.loads(x) for x in r.text.splitlines()]
    groups, total = expected(attributed.in_range(), ["project", "tag"], {"tenant": a.tenant.id})
    assert got(rows, ["project", "tag"]) == groups
    assert Decimal(last["total"]["billed_usd"]) == total["billed_usd"]
    names = {str(p.id): p.name for p in a.projects}
    assert all(row["project_name"] == names.get(row["project_id"]) for row in rows)
    bad = http.get("/admin/billing/export", params={"period": "2024-04", "group_by": "user"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tenant"


def test_cli_usage_and_export_group_and_filter_as_the_api_does(cli_env, http, attributed, capsysbinary):
    a = attributed.orgs[0]
    main(["usage", "--from", "2024-04-01", "--to", "2024-04-30", "--group-by", "key,tag", "--tenant", a.tenant.name,
          "--front-end", "xpay"])
    lines = capsysbinary.readouterr().out.decode().splitlines()
    api = http.get("/admin/usage", params={**RANGE, "group_by": "key,tag", "tenant": a.tenant.name,
                                           "front_end": "xpay"}).json()
    assert lines[1].split()[:3] == ["key_prefix", "tag", "requests"]
    body = [line.split() for line in lines[2:-1]]
    assert [(c[0], c[1], c[-1]) for c in body] == [
        (r["key_prefix"] or "-", r["tag"] or "-", r["billed_usd"]) for r in api["data"]]
    assert lines[-1].split()[-1] == api["total"]["billed_usd"]

    main(["export", "--period", "2024-04", "--group-by", "user,day", "--tenant", str(a.tenant.id), "--tag", "green"])
    http_export = http.get("/admin/billing/export", params={"period": "2024-04", "group_by": "user,day",
                                                            "tenant": str(a.tenant.id), "tag": "green"})
    assert capsysbinary.readouterr().out == http_export.content

    with pytest.raises(SystemExit) as exc:
        main(["usage", "--group-by", "user"])
    assert exc.value.code == 2 and b"tenant" in capsysbinary.readouterr().err
