"""Every group_by and filter of /admin/usage, and any grouping through the query itself, against sums of
the ledger rows themselves (the ledger: tests/metering/usage_ledger.py; the tenant's own reads and the
exports in test_usage_tenant_reads.py)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.metering import reports
from service.metering.usage_query import GROUP_KEYS, Filters, UsageQuery
from tests.metering.usage_ledger import COUNTS, FIRST, LAST, MONEY, RANGE, TAGS, Attributed, expected, got

# ---- /admin/usage ----------------------------------------------------------------------------------

_COMBOS = [(k,) for k in GROUP_KEYS] + list(itertools.combinations(GROUP_KEYS, 2)) + [
    ("tenant", "project", "key", "day", "model", "front_end"), ("project", "tag", "user"), GROUP_KEYS]


@pytest.mark.parametrize("group_by", _COMBOS, ids=",".join)
def test_admin_usage_every_grouping_equals_the_ledger(http, attributed, group_by):
    # Per-user views are read one tenant at a time; the others span every tenant of the month.
    scope = {"tenant": str(attributed.orgs[0].tenant.id)} if "user" in group_by else {}
    r = http.get("/admin/usage", params={**RANGE, "group_by": ",".join(reversed(group_by)), **scope})
    assert r.status_code == 200, r.text
    body = r.json()
    keys = [k for k in GROUP_KEYS if k in group_by]
    assert body["group_by"] == keys and body["has_more"] is False
    f = {"tenant": attributed.orgs[0].tenant.id} if scope else {}
    groups, total = expected(attributed.in_range(), keys, f)
    assert got(body["data"], keys) == groups
    assert {c: body["total"][c] for c in COUNTS} == {c: total[c] for c in COUNTS}
    assert {m: Decimal(body["total"][m]) for m in MONEY} == {m: total[m] for m in MONEY}
    if "tag" not in keys:
        # Without tags each row counts once: the groups add up to the total.
        assert sum(g["attempts"] for g in groups.values()) == total["attempts"]


def _filters(attributed: Attributed) -> list[tuple[dict[str, str], dict[str, Any]]]:
    a = attributed.orgs[0]
    t = {"tenant": a.tenant.name}
    return [
        ({"tenant": a.tenant.name}, {"tenant": a.tenant.id}),
        ({"tenant": str(a.tenant.id)}, {"tenant": a.tenant.id}),
        ({"project": str(a.projects[0].id)}, {"project": a.projects[0].id}),
        ({**t, "project": "batch"}, {"tenant": a.tenant.id, "project": a.projects[1].id}),
        ({"key": a.keys[0].prefix}, {"key": a.keys[0].id}),
        ({"key": str(a.keys[2].id)}, {"key": a.keys[2].id}),
        ({"model": "moonshotai/Kimi-K2.5"}, {"model": "moonshotai/Kimi-K2.5"}),
        ({"front_end": "xpay"}, {"front_end": "xpay"}),
        ({"tag": "red"}, {"tag": "red"}),
        ({**t, "user": "u2"}, {"tenant": a.tenant.id, "user": "u2"}),
        ({**t, "tag": "blue", "user": "u1", "front_end": "baseten"},
         {"tenant": a.tenant.id, "tag": "blue", "user": "u1", "front_end": "baseten"}),
    ]


@pytest.mark.parametrize("case", range(11))
def test_admin_usage_every_filter_equals_the_ledger(http, attributed, case):
    params, f = _filters(attributed)[case]
    for group_by in ("day", "tag,front_end", "project,key"):
        r = http.get("/admin/usage", params={**RANGE, "group_by": group_by, **params})
        assert r.status_code == 200, r.text
        keys = [k for k in GROUP_KEYS if k in group_by.split(",")]
        groups, total = expected(attributed.in_range(), keys, f)
        assert groups, "a filter case that selects nothing proves little"
        assert got(r.json()["data"], keys) == groups
        assert Decimal(r.json()["total"]["billed_usd"]) == total["billed_usd"]


@settings(max_examples=40, deadline=None)
@given(group_by=st.sets(st.sampled_from(GROUP_KEYS), min_size=1),
       filters=st.fixed_dictionaries({}, optional={
           "project": st.integers(0, 1), "key": st.integers(0, 2), "model": st.sampled_from(("openai/gpt-oss-120b",)),
           "front_end": st.sampled_from(("baseten", "xpay")), "tag": st.sampled_from(TAGS),
           "user": st.sampled_from(("u1", "u3"))}),
       org=st.integers(0, 1))
def test_any_grouping_and_filters_equal_the_ledger(database_url, attributed, group_by, filters, org):
    o = attributed.orgs[org]
    f: dict[str, Any] = {"tenant": o.tenant.id}
    for name, value in filters.items():
        f[name] = o.projects[value].id if name == "project" else o.keys[value].id if name == "key" else value
    query = UsageQuery(FIRST, LAST, tuple(group_by), Filters(
        tenant_id=o.tenant.id, project_id=f.get("project"), key_id=f.get("key"), model=f.get("model"),
        front_end=f.get("front_end"), tag=f.get("tag"), user=f.get("user")))

    async def run() -> dict[str, Any]:
        conn = await asyncpg.connect(database_url)
        try:
            return await reports.usage_summary(conn, query)
        finally:
            await conn.close()

    body = asyncio.run(run())
    groups, total = expected(attributed.in_range(), query.keys, f)
    assert got(body["data"], query.keys) == groups
    assert body["total"]["attempts"] == total["attempts"]
    assert Decimal(body["total"]["billed_usd"]) == total["billed_usd"]


def test_user_views_list_the_biggest_spenders_first_up_to_the_limit(http, attributed):
    a = attributed.orgs[0]
    r = http.get("/admin/usage", params={**RANGE, "group_by": "user", "tenant": str(a.tenant.id), "limit": "2"})
    body = r.json()
    groups, total = expected(attributed.in_range(), ["user"], {"tenant": a.tenant.id})
    ranked = sorted(groups.items(), key=lambda kv: kv[1]["billed_usd"], reverse=True)
    assert [(row["user"],) for row in body["data"]] == [k for k, _ in ranked[:2]]
    assert body["has_more"] is True and body["total"]["attempts"] == total["attempts"]


@pytest.mark.parametrize(("params", "param"), [
    ({"group_by": "user"}, "tenant"),  # per-user views need a tenant
    ({"group_by": "day", "user": "u1"}, "tenant"),
    ({"group_by": "team"}, "group_by"),
    ({"group_by": "tag,"}, "group_by"),
    ({"project": "web"}, "project"),  # a name needs its tenant
    ({"project": str(uuid.uuid4())}, "project"),
    ({"key": "sk-sy-nosuchkey"}, "key"),
    ({"tenant": "nobody-here"}, "tenant"),
    ({"front_end": "openrouter"}, "front_end"),
    ({"limit": "0"}, "limit"),
    ({"limit": "10001"}, "limit"),
    ({"tag": ""}, "tag"),
])
def test_admin_usage_refuses_what_it_cannot_answer(http, attributed, params, param):
    r = http.get("/admin/usage", params={**RANGE, **params})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


# ---- /v1/usage: the calling tenant's own ---------------------------------------------------------------
