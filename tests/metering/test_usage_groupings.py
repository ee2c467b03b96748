"""Every group_by and filter, on every read (/admin/usage, /v1/usage, the CLI, the exports), against
sums of the ledger rows themselves, over a known ledger with projects, keys, tags and end users.

The ledger lives in April 2024, a month no other test writes to.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.auth import projects, tenants
from service.cli import main
from service.metering import reports
from service.metering.events import UsageEvent
from service.metering.ledger import write_batch
from service.metering.usage_query import GROUP_KEYS, Filters, UsageQuery
from tests.metering.conftest import ADMIN_TOKEN

COUNTS = ("requests", "attempts", "prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens")
MONEY = ("provider_cost_usd", "billed_usd")
FIRST, LAST = date(2024, 4, 1), date(2024, 4, 30)
RANGE = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
_MOMENTS = (
    datetime(2024, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),  # the day before the range
    datetime(2024, 4, 1, tzinfo=UTC),
    datetime(2024, 4, 1, 23, 59, 59, tzinfo=UTC),
    datetime(2024, 4, 15, 12, tzinfo=UTC),
    datetime(2024, 4, 30, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 5, 1, tzinfo=UTC),  # the day after
)
_TAGS = ("red", "green", "blue")
_USERS = ("u1", "u2", "u3", None)


@dataclass
class Org:
    tenant: Any
    key: str  # a plaintext key of the tenant, for /v1
    projects: list[Any]
    keys: list[Any]  # key records: in project 0, in project 1, in no project


@dataclass
class Attributed:
    orgs: list[Org]
    events: list[UsageEvent]

    def in_range(self) -> list[UsageEvent]:
        start = datetime(2024, 4, 1, tzinfo=UTC)
        return [e for e in self.events if start <= e.started_at < start + timedelta(days=30)]


def _events(orgs: list[Org], rng: random.Random) -> list[UsageEvent]:
    run = uuid.uuid4().hex[:8]
    out = []
    for n in range(160):
        org = orgs[n % len(orgs)]
        key = rng.choice([*org.keys, None])
        project = key.project_id if key is not None else None
        if key is not None and rng.random() < 0.15:
            project = rng.choice(org.projects).id  # the key was in another project back then
        started = rng.choice(_MOMENTS) + timedelta(microseconds=rng.randrange(0, 999) * (n % 2))
        ok = rng.random() < 0.8
        prompt, completion = rng.randrange(1, 40_000), rng.randrange(0, 3_000)
        cost = (Decimal(prompt) * Decimal("0.6") + Decimal(completion) * Decimal(3)) / 1_000_000
        cost = cost.quantize(Decimal("1E-10"))
        tags = tuple(t for t in _TAGS if rng.random() < 0.4)
        # The same draws in the same order as a loop: the range is evaluated first.
        out.extend(UsageEvent(
            request_id=f"req_{run}_{n:03d}", attempt=attempt, tenant_id=org.tenant.id,
            key_id=key.id if key is not None else None, requested_model="auto",
            served_model=rng.choice(("openai/gpt-oss-120b", "moonshotai/Kimi-K2.5")),
            front_end=rng.choice(("baseten", "xpay")), route="x", status="ok" if ok else "error",
            error_code=None if ok else "upstream_error", http_status=200, stream=False,
            client_disconnected=False, prompt_tokens=prompt, cached_tokens=prompt // 5,
            completion_tokens=completion, reasoning_tokens=completion // 4, provider_cost_usd=cost,
            billed_usd=(cost * Decimal("1.25")).quantize(Decimal("1E-10")), price_version="v",
            cost_source="computed", estimated=False, upstream_request_id=None, started_at=started,
            first_token_at=None, ended_at=started + timedelta(seconds=1), project_id=project,
            end_user=rng.choice(_USERS), tags=tags, metadata={"n": str(n)} if n % 3 == 0 else None,
        ) for attempt in range(1, rng.choice((1, 1, 2)) + 1))
    return out


@pytest.fixture(scope="module")
def attributed(database_url) -> Attributed:
    async def build() -> Attributed:
        conn = await asyncpg.connect(database_url)
        try:
            orgs = []
            for stem in ("zed", "abe"):
                tenant = await tenants.create_tenant(conn, f"{stem}-{uuid.uuid4().hex[:6]}")
                made = [await projects.create_project(conn, tenant.id, name) for name in ("web", "batch")]
                plain, _ = await tenants.create_key(conn, tenant.id)
                keys = [(await tenants.create_key(conn, tenant.id, name=f"k{i}", project_id=p))[1]
                        for i, p in enumerate((made[0].id, made[1].id, None))]
                orgs.append(Org(tenant, plain, made, keys))
            events = _events(orgs, random.Random(20240415))
            await write_batch(conn, events[:100])
            await write_batch(conn, events[60:])  # overlaps: a retried batch
            await write_batch(conn, [replace(e) for e in events])  # a whole replay
            return Attributed(orgs, events)
        finally:
            await conn.close()

    return asyncio.run(build())


# ---- what the ledger says ----------------------------------------------------------------------------

def _values(e: UsageEvent, key: str) -> list[Any]:
    """The group values a row counts under for one key (a row counts under each of its tags)."""
    ident = {"tenant": e.tenant_id, "project": e.project_id, "key": e.key_id}
    if key in ident:
        return [str(ident[key]) if ident[key] else None]
    if key == "day":
        return [e.started_at.astimezone(UTC).date().isoformat()]
    if key == "tag":
        return list(e.tags) or [None]
    return [{"model": e.served_model, "front_end": e.front_end, "user": e.end_user}[key]]


def _selected(events: list[UsageEvent], f: dict[str, Any]) -> list[UsageEvent]:
    def keep(e: UsageEvent) -> bool:
        return all([
            "tenant" not in f or e.tenant_id == f["tenant"], "project" not in f or e.project_id == f["project"],
            "key" not in f or e.key_id == f["key"], "model" not in f or e.served_model == f["model"],
            "front_end" not in f or e.front_end == f["front_end"], "tag" not in f or f["tag"] in e.tags,
            "user" not in f or e.end_user == f["user"]])
    return [e for e in events if keep(e)]


def _zero() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTS, 0), **{m: Decimal(0) for m in MONEY}}


def _add(sums: dict[str, Any], e: UsageEvent) -> None:
    sums["requests"] += e.status == "ok"
    sums["attempts"] += 1
    for f in (*COUNTS[2:], *MONEY):
        sums[f] += getattr(e, f)


def expected(events: list[UsageEvent], keys: list[str], f: dict[str, Any]) -> tuple[dict[tuple, dict], dict]:
    groups: dict[tuple, dict] = defaultdict(_zero)
    total = _zero()
    for e in _selected(events, f):
        _add(total, e)
        # A tag filter narrows the tag groups to that tag.
        values = [[f["tag"]] if k == "tag" and "tag" in f else _values(e, k) for k in keys]
        for combo in itertools.product(*values):
            _add(groups[combo], e)
    return dict(groups), total


_FIELD = {"tenant": "tenant_id", "project": "project_id", "key": "key_id", "user": "user"}


def got(data: list[dict], keys: list[str], money: tuple[str, ...] = MONEY) -> dict[tuple, dict]:
    out = {}
    for row in data:
        combo = tuple(row[_FIELD.get(k, k)] for k in keys)
        assert combo not in out, f"group {combo} listed twice"
        sums = {c: int(row[c]) for c in COUNTS}
        sums.update({m: Decimal(row[m]) for m in money})
        out[combo] = sums
    return out


def _tenant_view(sums: dict[tuple, dict]) -> dict[tuple, dict]:
    return {k: {**{c: v[c] for c in COUNTS}, "cost_usd": v["billed_usd"]} for k, v in sums.items()}


@pytest.fixture(scope="module")
def http(gateway):
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30) as c:
        yield c


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
           "front_end": st.sampled_from(("baseten", "xpay")), "tag": st.sampled_from(_TAGS),
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
        assert got(r.json()["data"], keys, ("cost_usd",)) == _tenant_view(groups)
        assert Decimal(r.json()["total"]["cost_usd"]) == total["billed_usd"]
        assert all("provider_cost_usd" not in row and "tenant_id" not in row for row in r.json()["data"])
    # Names resolve within the caller's tenant only.
    r = _v1(gateway, a, group_by="key", project="web", tag="green")
    groups, _ = expected(attributed.in_range(), ["key"], {"tenant": a.tenant.id, "project": a.projects[0].id,
                                                          "tag": "green"})
    assert got(r.json()["data"], ["key"], ("cost_usd",)) == _tenant_view(groups)
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
    mine = sorted(_selected(attributed.in_range(), {"tenant": a.tenant.id, "tag": "red", "user": "u1"}),
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
    expected_rows = _selected(attributed.in_range(), {"tenant": a.tenant.id, "key": a.keys[1].id})
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
