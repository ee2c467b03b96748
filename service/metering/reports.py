"""Usage summaries from the daily rollup: across tenants for the operator, one tenant for itself.

usage_daily is kept by the ledger writer in the same statement that stores the ledger rows, so
these sums equal the ledger's without scanning it. Every tenant-facing query filters by the
authenticated tenant's id; nothing here takes a tenant id from the request.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from service.errors import invalid

MAX_RANGE_DAYS = 366
GROUP_KEYS = ("tenant", "model", "front_end", "day")
TOKEN_FIELDS = ("prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens")
COUNT_FIELDS = ("requests", "attempts", *TOKEN_FIELDS)
# The ledger's money scale (NUMERIC(20,10)); sums start here so an empty total reads 0.0000000000.
ZERO_MONEY = Decimal("0E-10")


def money(value: Decimal) -> str:
    """Exact and never in exponent form (str(Decimal('0E-10')) would be '0E-10')."""
    return format(value, "f")


def parse_day(value: str, param: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(f"`{param}` must be a date as YYYY-MM-DD, got {value!r}.", param) from None


def day_range(start: str | None, end: str | None, *, today: date) -> tuple[date, date]:
    """An inclusive range of UTC days; by default the current month so far."""
    first = parse_day(start, "from") if start else today.replace(day=1)
    last = parse_day(end, "to") if end else today
    if last < first:
        raise invalid("`to` must not be before `from`.", "to")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise invalid(f"The range may cover at most {MAX_RANGE_DAYS} days.", "to")
    return first, last


def parse_group_by(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ("tenant",)
    keys: list[str] = []
    for part in value.split(","):
        key = part.strip()
        if key not in GROUP_KEYS:
            raise invalid(f"`group_by` takes a comma-separated subset of {', '.join(GROUP_KEYS)};"
                          f" got {key!r}.", "group_by")
        if key not in keys:
            keys.append(key)
    return tuple(keys)


# Each group key: the columns it selects, groups by and orders by. Names sort bytewise (COLLATE
# "C") so the order is the same on every database whatever its locale.
_GROUPS = {
    "tenant": ("d.tenant_id, t.name AS tenant_name", "d.tenant_id, t.name",
               't.name COLLATE "C" NULLS LAST, d.tenant_id'),
    "day": ("d.day", "d.day", "d.day"),
    "model": ("d.served_model AS model", "d.served_model", 'd.served_model COLLATE "C"'),
    "front_end": ("d.front_end", "d.front_end", 'd.front_end COLLATE "C"'),
}
# The order of precedence when sorting, whatever order the caller listed the keys in.
_ORDER = ("tenant", "day", "model", "front_end")
_SUMS = ", ".join(f"sum(d.{f})::bigint AS {f}" for f in COUNT_FIELDS) + (
    ", sum(d.provider_cost_usd) AS provider_cost_usd, sum(d.billed_usd) AS billed_usd"
)


def _empty_total(money_fields: tuple[str, ...]) -> dict[str, Any]:
    total: dict[str, Any] = {f: 0 for f in COUNT_FIELDS}
    total.update({f: ZERO_MONEY for f in money_fields})
    return total


def _add(total: dict[str, Any], row: Any, money_fields: tuple[str, ...]) -> None:
    for f in COUNT_FIELDS:
        total[f] += row[f]
    for f in money_fields:
        total[f] += row[f]


def _render(values: dict[str, Any], money_fields: tuple[str, ...]) -> dict[str, Any]:
    return {**values, **{f: money(values[f]) for f in money_fields}}


async def usage_summary(conn, first: date, last: date, group_by: tuple[str, ...]) -> dict[str, Any]:
    """Usage across tenants for the days first..last, grouped by any subset of GROUP_KEYS."""
    keys = [k for k in _ORDER if k in group_by]
    select = ", ".join(_GROUPS[k][0] for k in keys)
    group = ", ".join(_GROUPS[k][1] for k in keys)
    order = ", ".join(_GROUPS[k][2] for k in keys)
    rows = await conn.fetch(
        f"SELECT {select}, {_SUMS} FROM usage_daily d LEFT JOIN tenants t ON t.id = d.tenant_id"
        f" WHERE d.day >= $1 AND d.day <= $2 GROUP BY {group} ORDER BY {order}",
        first,
        last,
    )
    money_fields = ("provider_cost_usd", "billed_usd")
    total = _empty_total(money_fields)
    data = []
    for row in rows:
        _add(total, row, money_fields)
        entry: dict[str, Any] = {}
        if "tenant" in keys:
            entry["tenant_id"] = str(row["tenant_id"])
            entry["tenant_name"] = row["tenant_name"]
        if "day" in keys:
            entry["day"] = row["day"].isoformat()
        if "model" in keys:
            entry["model"] = row["model"]
        if "front_end" in keys:
            entry["front_end"] = row["front_end"]
        entry.update({f: row[f] for f in COUNT_FIELDS})
        entry.update({f: money(row[f]) for f in money_fields})
        data.append(entry)
    return {"from": first.isoformat(), "to": last.isoformat(), "group_by": keys, "data": data,
            "total": _render(total, money_fields)}


async def tenant_usage(conn, tenant_id: uuid.UUID, first: date, last: date) -> dict[str, Any]:
    """One tenant's usage per day, model and front end; cost is what the tenant is billed."""
    rows = await conn.fetch(
        f"SELECT day, served_model, front_end, {', '.join(COUNT_FIELDS)}, billed_usd AS cost_usd"
        " FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3"
        ' ORDER BY day, served_model COLLATE "C", front_end COLLATE "C"',
        tenant_id,
        first,
        last,
    )
    money_fields = ("cost_usd",)
    total = _empty_total(money_fields)
    data = []
    for row in rows:
        _add(total, row, money_fields)
        data.append({
            "day": row["day"].isoformat(),
            "model": row["served_model"],
            "front_end": row["front_end"],
            **{f: row[f] for f in COUNT_FIELDS},
            "cost_usd": money(row["cost_usd"]),
        })
    return {"object": "usage", "from": first.isoformat(), "to": last.isoformat(), "data": data,
            "total": _render(total, money_fields)}


def month_bounds(month: date) -> tuple[date, date]:
    """The first and last day of the month `month` starts."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return month, following - timedelta(days=1)
