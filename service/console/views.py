"""What each console view shows, as JSON: spend over time, savings, budgets with their alerts, top
keys and users, the last requests.

Spend, top keys and top end users are read through service.metering.usage_query (the rollups, as
/v1/usage and /admin/usage read them, so the numbers agree); savings from the rollup's
always-direct baseline; the last requests from the ledger, one tenant's index range at a time. Every amount
is a billed amount, rendered exactly as a decimal string.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import asyncpg

from service.alerts import outbox
from service.alerts.rules import BUDGET_LIMIT_REACHED, BUDGET_THRESHOLD, DEFAULT_THRESHOLDS, SPEND_SPIKE
from service.console import queries
from service.db.pool import Db, returned
from service.metering import budget_records
from service.metering.reports import ZERO_MONEY, money, totals
from service.metering.usage_query import COUNT_FIELDS, Filters, UsageQuery, grouped_sql, total_sql

SPEND_DIMENSIONS = ("model", "front_end", "project", "tag", "key")
# Labels a tenant chooses for itself: read for one tenant at a time.
PER_TENANT_DIMENSIONS = ("tag",)
# A row with several tags counts under each: these groups may add up to more than the total.
OVERLAPPING_DIMENSIONS = ("tag",)
TOP_LIMIT = 10
REQUESTS_LIMIT = 50
ALERTS_PER_KIND = 100
ZERO = ZERO_MONEY  # the ledger's scale: an empty day reads 0.0000000000, like any other amount
_TENTHS = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class Scope:
    """What a console request may read: one tenant, or (the operator only) every tenant."""

    first: date  # inclusive UTC days
    last: date
    tenant_id: uuid.UUID | None

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def query(self, group_by: tuple[str, ...], limit: int | None = None) -> UsageQuery:
        return UsageQuery(self.first, self.last, group_by, Filters(tenant_id=self.tenant_id), limit)

    def head(self) -> dict[str, Any]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat(),
                "tenant_id": str(self.tenant_id) if self.tenant_id else None}


def percent(part: Decimal, whole: Decimal) -> str | None:
    """part/whole in percent to one decimal place; None when the whole is zero."""
    if whole == 0:
        return None
    return format((part * 100 / whole).quantize(_TENTHS, rounding=ROUND_HALF_EVEN), "f")


def _group(row: asyncpg.Record, by: str, every_tenant: bool) -> tuple[str, str]:
    """(a stable key, a label) for a row's group."""
    if by == "project":
        key, label = str(row["project_id"] or ""), row["project_name"] or "(no project)"
    elif by == "key":
        key = str(row["key_id"] or "")
        label = f"{row['key_prefix']} {row['key_name'] or ''}".strip() if row["key_id"] else "(no key)"
    elif by == "tag":
        key, label = row["tag"] or "", row["tag"] or "(untagged)"
    else:
        key = label = row[by]
    if every_tenant and by in ("project", "key"):
        key, label = f"{row['tenant_id']}/{key}", f"{row['tenant_name']} · {label}"
    return key, label


async def spend(conn: Db, scope: Scope, by: str) -> dict[str, Any]:
    """Billed spend per day for each group of `by`, the groups' totals and the overall total."""
    every_tenant = scope.tenant_id is None
    group_by = ("tenant", "day", by) if every_tenant and by in ("project", "key") else ("day", by)
    query = scope.query(group_by)
    sql, args = grouped_sql(query)
    rows = await conn.fetch(sql, *args)
    if by in OVERLAPPING_DIMENSIONS:
        total_query, total_args = total_sql(query)
        total = totals(returned(await conn.fetchrow(total_query, *total_args)))  # an aggregate: one row
    else:
        # The groups partition the rows: their sum is the total, without a second scan.
        total = {f: sum((r[f] for r in rows), 0) for f in COUNT_FIELDS}
        total["billed_usd"] = sum((r["billed_usd"] for r in rows), ZERO)
    index = {day: n for n, day in enumerate(scope.days())}
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        key, label = _group(row, by, every_tenant)
        group = groups.setdefault(key, {"key": key, "label": label, "points": [ZERO] * len(index),
                                        "billed_usd": ZERO, **dict.fromkeys(COUNT_FIELDS, 0)})
        group["points"][index[row["day"]]] += row["billed_usd"]
        group["billed_usd"] += row["billed_usd"]
        for f in COUNT_FIELDS:
            group[f] += row[f]
    ordered = sorted(groups.values(), key=lambda g: (-g["billed_usd"], g["label"]))
    return {
        **scope.head(), "view": "spend", "by": by, "days": [d.isoformat() for d in index],
        "groups_overlap": by in OVERLAPPING_DIMENSIONS,
        "groups": [{**g, "billed_usd": money(g["billed_usd"]), "points": [money(p) for p in g["points"]]}
                   for g in ordered],
        "total": {**{f: total[f] for f in COUNT_FIELDS}, "billed_usd": money(total["billed_usd"])},
    }


@dataclass(slots=True)
class _Sums:
    requests: int = 0
    billed: Decimal = ZERO
    direct: Decimal = ZERO

    def add(self, row: asyncpg.Record) -> None:
        self.requests += row["requests"]
        self.billed += row["billed_usd"]
        self.direct += row["direct_billed_usd"]

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "billed_usd": money(self.billed), "direct_billed_usd": money(self.direct),
                "savings_usd": money(self.direct - self.billed),
                "savings_percent": percent(self.direct - self.billed, self.direct)}


async def savings(conn: Db, scope: Scope) -> dict[str, Any]:
    """What the tenant was billed against what always-Baseten-direct would have billed."""
    rows = await queries.savings(conn, scope.first, scope.last, scope.tenant_id)
    total = _Sums()
    by_day = {day: _Sums() for day in scope.days()}
    by_model: dict[str, _Sums] = {}
    by_front_end: dict[str, _Sums] = {}
    for row in rows:
        total.add(row)
        by_day[row["day"]].add(row)
        by_model.setdefault(row["model"], _Sums()).add(row)
        by_front_end.setdefault(row["front_end"], _Sums()).add(row)

    def ranked(groups: dict[str, _Sums], name: str) -> list[dict[str, Any]]:
        order = sorted(groups.items(), key=lambda item: (-(item[1].direct - item[1].billed), item[0]))
        return [{name: key, **sums.as_json()} for key, sums in order]

    return {**scope.head(), "view": "savings", "total": total.as_json(),
            "days": [{"day": day.isoformat(), **sums.as_json()} for day, sums in by_day.items()],
            "by_model": ranked(by_model, "model"), "by_front_end": ranked(by_front_end, "front_end")}


def _alert(event: dict[str, Any]) -> dict[str, Any]:
    """An alert event as a tenant may see it: no delivery details (they name the operator's webhook)."""
    data = event["data"]
    return {"id": event["id"], "type": event["type"], "created_at": event["created_at"], "status": event["status"],
            "budget_id": data.get("budget_id"), "period_start": data.get("period_start") or data.get("hour_start"),
            "threshold_percent": _text(data.get("threshold_percent")), "limit_usd": data.get("limit_usd"),
            "spent_usd": data.get("spent_usd") or data.get("billed_usd"), "norm_usd": data.get("norm_usd")}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


async def budgets(conn: asyncpg.Connection, scope: Scope, *, now: datetime | None = None) -> dict[str, Any]:
    """Each budget's current period as a bar (settled and leased against the limit), its
    thresholds and the alerts it raised; the spend-spike alerts beside them."""
    if scope.tenant_id is None:
        records = await budget_records.list_all_budgets(conn, now=now)
    else:
        records = await budget_records.list_budgets(conn, scope.tenant_id, now=now)
    names = await queries.tenant_names(conn)
    own = await queries.thresholds(conn, [r.id for r in records])
    events: list[dict[str, Any]] = []
    for kind in (BUDGET_THRESHOLD, BUDGET_LIMIT_REACHED):
        events += await outbox.list_events(conn, tenant_id=scope.tenant_id, kind=kind, limit=ALERTS_PER_KIND)
    by_budget: dict[str, list[dict[str, Any]]] = {}
    for event in sorted(events, key=lambda e: (e["created_at"], e["id"]), reverse=True):
        by_budget.setdefault(str(event["data"].get("budget_id")), []).append(_alert(event))
    spikes = await outbox.list_events(conn, tenant_id=scope.tenant_id, kind=SPEND_SPIKE, limit=TOP_LIMIT)
    out = []
    for r in records:
        used = r.spent_usd + r.leased_usd
        out.append({
            **r.as_json(), "tenant_name": names.get(r.tenant_id), "used_usd": money(used),
            "used_percent": percent(used, r.limit_usd),
            "thresholds": [format(p, "f") for p in own.get(r.id, DEFAULT_THRESHOLDS)],
            "alerts": by_budget.get(str(r.id), []),
        })
    return {"tenant_id": str(scope.tenant_id) if scope.tenant_id else None, "view": "budgets", "budgets": out,
            "spikes": [{**_alert(e), "tenant_id": e["tenant_id"], "tenant_name": names.get(uuid.UUID(e["tenant_id"]))}
                       for e in spikes]}


async def top(conn: Db, scope: Scope) -> dict[str, Any]:
    """The keys that spent the most in the range, from the rollup."""
    every_tenant = scope.tenant_id is None
    sql, args = grouped_sql(scope.query(("tenant", "key") if every_tenant else ("key",)))
    keys = sorted(await conn.fetch(sql, *args), key=lambda r: (-r["billed_usd"], r["key_prefix"] or ""))
    return {**scope.head(), "view": "top", "keys": [{
        "key_id": str(r["key_id"]) if r["key_id"] else None, "key_prefix": r["key_prefix"], "key_name": r["key_name"],
        "tenant_name": r["tenant_name"] if every_tenant else None,
        "billed_usd": money(r["billed_usd"]), **{f: r[f] for f in COUNT_FIELDS},
    } for r in keys[:TOP_LIMIT]]}


async def users(conn: Db, scope: Scope) -> dict[str, Any]:
    """The end users that spent the most in the range: one tenant's, from the per-user daily rollup
    (usage_daily_users), one tenant at a time because a tenant may have millions of them."""
    if scope.tenant_id is None:
        raise ValueError("end users are read one tenant at a time")
    sql, args = grouped_sql(scope.query(("user",), limit=TOP_LIMIT))
    rows = (await conn.fetch(sql, *args))[:TOP_LIMIT]
    return {**scope.head(), "view": "users", "users": [
        {"user": r["end_user"], "billed_usd": money(r["billed_usd"]), **{f: r[f] for f in COUNT_FIELDS}}
        for r in rows]}


def _millis(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else round((end - start).total_seconds() * 1000)


async def requests(conn: Db, scope: Scope, limit: int = REQUESTS_LIMIT) -> dict[str, Any]:
    """The newest attempts in the range: route, tokens, cost."""
    rows = await queries.last_requests(conn, scope.first, scope.last, scope.tenant_id, limit)
    return {**scope.head(), "view": "requests", "requests": [{
        "request_id": r["request_id"], "attempt": r["attempt"], "started_at": r["started_at"].isoformat(),
        "tenant_name": r["tenant_name"] if scope.tenant_id is None else None,
        "key_prefix": r["key_prefix"], "project_name": r["project_name"], "api": r["api"],
        "requested_model": r["requested_model"], "served_model": r["served_model"], "front_end": r["front_end"],
        "route": r["route"], "status": r["status"], "http_status": r["http_status"], "stream": r["stream"],
        "prompt_tokens": r["prompt_tokens"], "cached_tokens": r["cached_tokens"],
        "completion_tokens": r["completion_tokens"], "reasoning_tokens": r["reasoning_tokens"],
        "billed_usd": money(r["billed_usd"]), "estimated": r["estimated"],
        "direct_billed_usd": money(r["direct_billed_usd"]) if r["direct_billed_usd"] is not None else None,
        "duration_ms": _millis(r["started_at"], r["ended_at"]),
        "first_token_ms": _millis(r["started_at"], r["first_token_at"]),
        "end_user": r["end_user"], "tags": list(r["tags"]),
    } for r in rows]}
