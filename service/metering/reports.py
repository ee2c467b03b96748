"""Usage summaries: across tenants for the operator, one tenant for itself.

Read through service.metering.usage_query, from the rollups the ledger writer keeps in the same
statement that stores the ledger rows (so these sums equal the ledger's without scanning it), or
from the ledger itself for end users. Every tenant-facing query filters by the authenticated
tenant's id; nothing here takes a tenant id from the request.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from service.db.pool import Db, Row, returned
from service.errors import invalid
from service.metering.usage_query import (
    COUNT_FIELDS,
    GROUP_KEYS,
    MONEY_FIELDS,
    UsageQuery,
    check_user_scope,
    group_fields,
    grouped_sql,
    parse_group_by,
    total_sql,
)

__all__ = ["COUNT_FIELDS", "GROUP_KEYS", "MONEY_FIELDS", "TOKEN_FIELDS", "ZERO_MONEY", "UsageQuery", "day_range",
           "money", "month_bounds", "parse_group_by", "tenant_usage", "usage_summary"]

MAX_RANGE_DAYS = 366
TOKEN_FIELDS = COUNT_FIELDS[2:]
# The ledger's money scale (NUMERIC(20,10)); an empty total reads 0.0000000000.
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


def totals(row: Row) -> dict[str, Any]:
    """The total row's sums; sums over no rows come back NULL and read as zero."""
    out: dict[str, Any] = {f: row[f] or 0 for f in COUNT_FIELDS}
    out.update({f: row[f] if row[f] is not None else ZERO_MONEY for f in MONEY_FIELDS})
    return out


async def _summary(conn: Db, query: UsageQuery) -> tuple[list[asyncpg.Record], dict[str, Any], bool]:
    """(the groups, the total, whether there are more groups than `limit`)."""
    check_user_scope(query)
    sql, args = grouped_sql(query)
    rows = await conn.fetch(sql, *args)
    has_more = query.limit is not None and len(rows) > query.limit
    total_query, total_args = total_sql(query)
    total = totals(returned(await conn.fetchrow(total_query, *total_args)))
    return (rows[: query.limit] if has_more else rows), total, has_more


async def usage_summary(conn: Db, query: UsageQuery) -> dict[str, Any]:
    """Usage across tenants (or within those the filters name), grouped by any of GROUP_KEYS."""
    rows, total, has_more = await _summary(conn, query)
    keys = query.keys
    data = [{**group_fields(row, keys), **{f: row[f] for f in COUNT_FIELDS},
             **{f: money(row[f]) for f in MONEY_FIELDS}, "savings_usd": money(_saved(row))} for row in rows]
    rendered = {**{f: total[f] for f in COUNT_FIELDS}, **{f: money(total[f]) for f in MONEY_FIELDS},
                "savings_usd": money(_saved(total))}
    return {"from": query.first.isoformat(), "to": query.last.isoformat(), "group_by": keys, "data": data,
            "total": rendered, "has_more": has_more}


def _saved(row: Row) -> Decimal:
    """Billed against always-Baseten-direct for the same requests: positive when routing saved."""
    direct, billed = row["direct_billed_usd"], row["billed_usd"]
    saved: Decimal = (direct if direct is not None else ZERO_MONEY) - (billed if billed is not None else ZERO_MONEY)
    return saved


def _tenant_money(row: Row) -> dict[str, str]:
    """What a tenant sees: what it is billed, what always-direct would have billed, the saving."""
    return {"cost_usd": money(row["billed_usd"] if row["billed_usd"] is not None else ZERO_MONEY),
            "direct_cost_usd": money(row["direct_billed_usd"] if row["direct_billed_usd"] is not None
                                     else ZERO_MONEY),
            "savings_usd": money(_saved(row))}


async def tenant_usage(conn: Db, query: UsageQuery) -> dict[str, Any]:
    """One tenant's usage (its id is in the query's filters); cost is what the tenant is billed."""
    if query.filters.tenant_id is None:
        raise ValueError("a tenant's usage needs the tenant's id in its filters")
    rows, total, has_more = await _summary(conn, query)
    keys = query.keys
    data = [{**group_fields(row, keys), **{f: row[f] for f in COUNT_FIELDS}, **_tenant_money(row)} for row in rows]
    rendered = {**{f: total[f] for f in COUNT_FIELDS}, **_tenant_money(total)}
    return {"object": "usage", "from": query.first.isoformat(), "to": query.last.isoformat(), "group_by": keys,
            "data": data, "total": rendered, "has_more": has_more}


def month_bounds(month: date) -> tuple[date, date]:
    """The first and last day of the month `month` starts."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return month, following - timedelta(days=1)
