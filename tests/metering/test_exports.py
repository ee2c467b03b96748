"""Billing export, admin usage and the tenant usage API against a known ledger written with replays."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import httpx
import pytest

from service.metering.exports import BILLING_COLUMNS, LEDGER_COLUMNS, ledger_export
from service.metering.ledger import write_batch
from tests.metering.conftest import ADMIN_TOKEN, MONEY_FIELDS, TOKEN_FIELDS, Ledger
from tests.support import fetch

COUNTS = ("requests", "attempts", *TOKEN_FIELDS)
# The ledger's money, summed as the rollups sum it (the baseline counts an unpriced row as billed).
LEDGER_MONEY = ("sum(provider_cost_usd) AS provider_cost_usd", "sum(billed_usd) AS billed_usd",
                "sum(COALESCE(direct_billed_usd, billed_usd)) AS direct_billed_usd",
                "sum(COALESCE(direct_billed_usd, billed_usd) - billed_usd) AS savings_usd")
SUMMED = (*COUNTS, *MONEY_FIELDS)


def _billing(admin, fmt: str, period: str = "2024-02") -> httpx.Response:
    r = admin.get("/admin/billing/export", params={"period": period, "format": fmt})
    assert r.status_code == 200, r.text
    return r


def _expected_billing(ledger: Ledger) -> list[dict]:
    names = {t.tenant_id: t.tenant_name for t in ledger.tenants}
    daily = ledger.daily(ledger.in_month())
    rows = [{"tenant_id": str(tid), "tenant_name": names[tid], "day": day.isoformat(), "model": model,
             "front_end": fe, **sums} for (tid, day, model, fe), sums in daily.items()]
    return sorted(rows, key=lambda r: (r["tenant_name"], r["day"], r["model"], r["front_end"]))


def _ledger_order(e) -> tuple:
    return (e.started_at, e.request_id, e.attempt)


def _typed(row: dict) -> dict:
    """A parsed export row with counts as int and money as Decimal, for exact comparison."""
    out = dict(row)
    for f in COUNTS:
        out[f] = int(out[f])
    for f in MONEY_FIELDS:
        out[f] = Decimal(out[f])
    return out


def test_billing_csv_rows_and_totals_equal_the_ledger(admin, ledger, database_url):
    r = _billing(admin, "csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="billing-2024-02.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == BILLING_COLUMNS
    *data, total = rows
    expected = _expected_billing(ledger)
    assert [_typed(row) for row in data] == expected
    # Names sort differently from creation order, and every tenant with usage is there.
    assert [row["tenant_name"] for row in data] == sorted(row["tenant_name"] for row in data)
    assert {row["tenant_name"] for row in data} == {t.tenant_name for t in ledger.tenants}
    # Money is exact, at the ledger's scale, never in exponent form.
    assert all(len(row[f].split(".")[1]) == 10 and "E" not in row[f] for row in rows for f in MONEY_FIELDS)

    assert total["day"] == "TOTAL" and total["tenant_id"] == total["model"] == ""
    ledger_sums = asyncio.run(fetch(
        database_url,
        "SELECT count(*) FILTER (WHERE status = 'ok') AS requests, count(*) AS attempts, "
        + ", ".join([*(f"sum({f}) AS {f}" for f in TOKEN_FIELDS), *LEDGER_MONEY])
        + " FROM usage_events"
        + " WHERE started_at >= '2024-02-01T00:00:00Z' AND started_at < '2024-03-01T00:00:00Z'",
    ))[0]
    assert {f: _typed(total)[f] for f in SUMMED} == {f: ledger_sums[f] for f in SUMMED}
    assert ledger_sums["attempts"] == len(ledger.in_month())  # the replays were stored once


def test_billing_jsonl_matches_csv_and_ends_with_the_total(admin, ledger):
    lines = [json.loads(line) for line in _billing(admin, "jsonl").text.splitlines()]
    *data, last = lines
    assert set(last) == {"total"}
    expected = _expected_billing(ledger)
    assert [_typed(row) for row in data] == expected
    assert all(isinstance(row[f], int) for row in data for f in COUNTS)
    assert all(isinstance(row[f], str) for row in data for f in MONEY_FIELDS)
    csv_total = list(csv.DictReader(io.StringIO(_billing(admin, "csv").text)))[-1]
    assert last["total"] == {f: (int(csv_total[f]) if f in COUNTS else csv_total[f]) for f in SUMMED}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_billing_export_is_byte_identical_on_rerun(admin, ledger, fmt):
    assert _billing(admin, fmt).content == _billing(admin, fmt).content


def test_billing_export_of_an_empty_month_is_just_the_totals(admin):
    text = _billing(admin, "csv", "1999-01").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and rows[0]["day"] == "TOTAL"
    assert rows[0]["requests"] == "0" and rows[0]["billed_usd"] == "0.0000000000"
    total = json.loads(_billing(admin, "jsonl", "1999-01").text)["total"]
    assert total["provider_cost_usd"] == "0.0000000000"


@pytest.mark.parametrize(("params", "param"), [
    ({}, "period"), ({"period": "2024-13"}, "period"), ({"period": "2024-2"}, "period"),
    ({"period": "Feb 2024"}, "period"), ({"period": "2024-02", "format": "xlsx"}, "format"),
])
def test_billing_export_validation(admin, params, param):
    r = admin.get("/admin/billing/export", params=params)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_rollup_equals_ledger_sums(ledger, database_url):
    """usage_daily, which every summary reads, holds exactly the sums of the stored ledger rows."""
    ids = [t.tenant_id for t in ledger.tenants]
    tokens = ", ".join(f"sum({f})::numeric AS {f}" for f in TOKEN_FIELDS)
    from_ledger = asyncio.run(fetch(
        database_url,
        f"SELECT tenant_id, (started_at AT TIME ZONE 'UTC')::date AS day, served_model, front_end,"
        f" count(*) FILTER (WHERE status = 'ok') AS requests, count(*) AS attempts, {tokens},"
        f" {', '.join(LEDGER_MONEY)}"
        f" FROM usage_events WHERE tenant_id = ANY($1) GROUP BY 1, 2, 3, 4", ids))
    rollup_money = ("sum(provider_cost_usd) AS provider_cost_usd, sum(billed_usd) AS billed_usd, "
                    "sum(direct_billed_usd) AS direct_billed_usd, "
                    "sum(direct_billed_usd) - sum(billed_usd) AS savings_usd")
    from_rollup = asyncio.run(fetch(
        database_url, f"SELECT tenant_id, day, served_model, front_end, sum(requests) AS requests,"
        f" sum(attempts) AS attempts, {tokens}, {rollup_money}"
        f" FROM usage_daily WHERE tenant_id = ANY($1) GROUP BY 1, 2, 3, 4", ids))
    assert sorted(map(tuple, from_ledger)) == sorted(map(tuple, from_rollup))
    expected = ledger.daily(ledger.events)
    assert {(r["tenant_id"], r["day"], r["served_model"], r["front_end"]): {f: r[f] for f in SUMMED}
            for r in from_rollup} == expected


# --- admin usage --------------------------------------------------------------------------------------

def test_admin_usage_grouped_by_tenant_and_model(admin, ledger):
    r = admin.get("/admin/usage",
                  params={"from": "2024-02-01", "to": "2024-02-29", "group_by": "model,tenant"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group_by"] == ["tenant", "model"]
    expected: dict[tuple, dict] = {}
    for (tid, _day, model, _fe), sums in ledger.daily(ledger.in_month()).items():
        row = expected.setdefault((str(tid), model), dict.fromkeys(SUMMED, 0))
        for f in SUMMED:
            row[f] += sums[f]
    got = {(row["tenant_id"], row["model"]): {f: _typed(row)[f] for f in SUMMED} for row in body["data"]}
    assert got == expected
    names = [row["tenant_name"] for row in body["data"]]
    assert names == sorted(names)
    billing_total = list(csv.DictReader(io.StringIO(_billing(admin, "csv").text)))[-1]
    assert {f: str(v) for f, v in body["total"].items()} == {f: billing_total[f] for f in SUMMED}


def test_admin_usage_default_groups_by_tenant(admin, ledger):
    body = admin.get("/admin/usage", params={"from": "2024-02-01", "to": "2024-02-29"}).json()
    assert body["group_by"] == ["tenant"]
    ids = sorted(row["tenant_id"] for row in body["data"])
    assert ids == sorted(str(t.tenant_id) for t in ledger.tenants)
    assert set(body["data"][0]) == {"tenant_id", "tenant_name", *SUMMED}


def test_admin_usage_by_day_respects_the_range(admin, ledger):
    params = {"from": "2024-02-02", "to": "2024-02-29", "group_by": "day"}
    body = admin.get("/admin/usage", params=params).json()
    days = [row["day"] for row in body["data"]]
    assert days == sorted(days) and all("2024-02-02" <= d <= "2024-02-29" for d in days)
    expected = sum(s["attempts"] for (_, day, _, _), s in ledger.daily(ledger.in_month()).items()
                   if day.isoformat() >= "2024-02-02")
    assert body["total"]["attempts"] == expected


@pytest.mark.parametrize(("params", "param"), [
    ({"group_by": "tenant,colour"}, "group_by"), ({"group_by": ""}, "group_by"),
    ({"from": "2024-02-30"}, "from"), ({"from": "yesterday"}, "from"), ({"to": "2024/02/01"}, "to"),
    ({"from": "2024-03-01", "to": "2024-02-01"}, "to"), ({"from": "2023-01-01", "to": "2024-02-01"}, "to"),
])
def test_admin_usage_validation(admin, params, param):
    r = admin.get("/admin/usage", params=params)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


# --- tenant usage and export --------------------------------------------------------------------------

def test_tenant_usage_shows_only_the_callers_rows(anon, ledger):
    for tenant in ledger.tenants:
        r = anon.get("/v1/usage", params={"from": "2024-02-01", "to": "2024-02-29"},
                     headers={"authorization": f"Bearer {tenant.key}"})
        assert r.status_code == 200, r.text
        body = r.json()
        expected = ledger.daily(ledger.in_month(tenant.tenant_id))
        got = {(row["day"], row["model"], row["front_end"]): row for row in body["data"]}
        assert set(got) == {(day.isoformat(), m, fe) for (_, day, m, fe) in expected}
        for (_, day, m, fe), sums in expected.items():
            row = got[(day.isoformat(), m, fe)]
            assert {f: row[f] for f in COUNTS} == {f: sums[f] for f in COUNTS}
            assert Decimal(row["cost_usd"]) == sums["billed_usd"]  # what the tenant pays, not provider cost
            assert "provider_cost_usd" not in row and "tenant_id" not in row
        assert Decimal(body["total"]["cost_usd"]) == sum(s["billed_usd"] for s in expected.values())
        assert body["total"]["attempts"] == len(ledger.in_month(tenant.tenant_id))


def _export(anon, tenant, fmt: str, **params) -> httpx.Response:
    r = anon.get("/v1/usage/export", params={"format": fmt, **params},
                 headers={"authorization": f"Bearer {tenant.key}"})
    assert r.status_code == 200, r.text
    return r


def test_tenant_export_has_exactly_the_callers_rows_in_order(anon, ledger):
    for tenant in ledger.tenants:
        rows = list(csv.DictReader(io.StringIO(
            _export(anon, tenant, "csv", **{"from": "2024-02-01", "to": "2024-02-29"}).text)))
        assert rows and tuple(rows[0]) == LEDGER_COLUMNS
        mine = sorted(ledger.in_month(tenant.tenant_id), key=_ledger_order)
        got = [(r["request_id"], int(r["attempt"])) for r in rows]
        assert got == [(e.request_id, e.attempt) for e in mine]
        for row, event in zip(rows, mine, strict=True):
            assert datetime.fromisoformat(row["started_at"]) == event.started_at
            assert Decimal(row["billed_usd"]) == event.billed_usd
            assert row["stream"] == ("true" if event.stream else "false")
            assert row["error_code"] == (event.error_code or "")
            assert int(row["prompt_tokens"]) == event.prompt_tokens
        assert "provider_cost_usd" not in rows[0]


def test_tenant_export_jsonl_and_time_bounds(anon, ledger):
    tenant = ledger.tenants[1]
    lines = [json.loads(x) for x in _export(anon, tenant, "jsonl", **{
        "from": "2024-02-01T00:00:00Z", "to": "2024-02-29T23:59:59+00:00"}).text.splitlines()]
    start, end = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    mine = [e for e in ledger.events if e.tenant_id == tenant.tenant_id]
    expected = sorted((e for e in mine if start <= e.started_at < end),
                      key=_ledger_order)
    assert [(x["request_id"], x["attempt"]) for x in lines] == [(e.request_id, e.attempt) for e in expected]
    assert all(set(x) == set(LEDGER_COLUMNS) for x in lines)
    assert all(isinstance(x["stream"], bool) and isinstance(x["billed_usd"], str) for x in lines)
    # A range covering the month before too includes that row; the bare date `to` covers its whole day.
    wider = _export(anon, tenant, "jsonl", **{"from": "2024-01-31", "to": "2024-03-01"}).text.splitlines()
    assert len(wider) == len([e for e in ledger.events if e.tenant_id == tenant.tenant_id])


@pytest.mark.parametrize(("params", "param"), [
    ({"from": "not-a-date"}, "from"), ({"to": "2024-02-31"}, "to"), ({"format": "xml"}, "format"),
    ({"from": "2024-03-01", "to": "2024-02-01"}, "to"), ({"from": "2023-01-01", "to": "2024-02-01"}, "to"),
])
def test_tenant_export_validation(anon, ledger, params, param):
    headers = {"authorization": f"Bearer {ledger.tenants[0].key}"}
    r = anon.get("/v1/usage/export", params=params, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_tenant_usage_requires_a_tenant_key(anon):
    assert anon.get("/v1/usage").status_code == 401
    assert anon.get("/v1/usage/export").status_code == 401
    admin_token = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    assert anon.get("/v1/usage", headers=admin_token).status_code == 401


async def test_ledger_export_pages_by_keyset_without_loss_or_repeat(ledger, database_url):
    """Pages smaller than the data (and rows sharing a started_at) give the same bytes as one page."""
    tenant = ledger.tenants[0]
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async def run(batch: int, fmt: str) -> bytes:
            chunks = ledger_export(pool, tenant.tenant_id, start, end, fmt, batch=batch)
            return b"".join([c async for c in chunks])

        for fmt in ("csv", "jsonl"):
            whole = await run(10_000, fmt)
            assert await run(1, fmt) == whole and await run(7, fmt) == whole
        count = len([e for e in ledger.events if e.tenant_id == tenant.tenant_id])
        assert len(whole.splitlines()) == count
    finally:
        await pool.close()


def test_users_rollup_equals_the_ledger_per_user(ledger, database_url):
    """usage_daily_users, which per-user views read, holds exactly the ledger's sums per tenant, day and
    end user (a row without one under ''), replays included."""
    users = [replace(e, request_id=e.request_id + "-u", end_user=f"user-{i % 4}" if i % 5 else None)
             for i, e in enumerate(ledger.events)]

    async def write() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await write_batch(conn, users)
            await write_batch(conn, users[::2])  # replayed rows are counted once
        finally:
            await conn.close()

    asyncio.run(write())
    tokens = ", ".join(f"sum({f})::numeric AS {f}" for f in TOKEN_FIELDS)
    from_ledger = asyncio.run(fetch(
        database_url,
        f"SELECT tenant_id, (started_at AT TIME ZONE 'UTC')::date AS day, COALESCE(end_user, '') AS end_user,"
        f" count(*) FILTER (WHERE status = 'ok') AS requests, count(*) AS attempts, {tokens},"
        f" {', '.join(LEDGER_MONEY[:3])} FROM usage_events GROUP BY 1, 2, 3"))
    from_rollup = asyncio.run(fetch(
        database_url, f"SELECT tenant_id, day, end_user, requests, attempts, {tokens.replace('sum(', '(')},"
        " provider_cost_usd, billed_usd, direct_billed_usd FROM usage_daily_users"
        " GROUP BY tenant_id, day, end_user, requests, attempts, provider_cost_usd, billed_usd, direct_billed_usd, "
        + ", ".join(TOKEN_FIELDS)))
    assert from_ledger and sorted(map(tuple, from_ledger)) == sorted(map(tuple, from_rollup))
