"""The console's own reads, beside what service.metering.reports already answers.

Savings come from the daily rollup (its `direct_billed_usd` is the always-Baseten-direct
baseline the ledger writer keeps); the last requests from the ledger, newest first through
ix_usage_events_tenant_started (for every tenant at once, each tenant's newest through the same
index, merged). Every query takes the tenant to read, or None for every tenant -- only ever the
console's scope, never a value from the request.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from service.db.pool import Db

# One pass over the rollup, down to (day, model, front end): a few hundred rows a month, from
# which the savings view sums its breakdowns exactly (cheaper than GROUPING SETS, which would
# aggregate every rollup row once per breakdown).
_SAVINGS = """
SELECT d.day, d.served_model AS model, d.front_end, sum(d.requests)::bigint AS requests,
       sum(d.billed_usd) AS billed_usd, sum(d.direct_billed_usd) AS direct_billed_usd
FROM usage_daily d
WHERE d.day >= $1 AND d.day <= $2{tenant}
GROUP BY 1, 2, 3
"""


async def savings(conn: Db, first: date, last: date, tenant_id: uuid.UUID | None) -> list[asyncpg.Record]:
    """Requests, billed and always-direct sums per day, model and front end."""
    # Two statements rather than `$3 IS NULL OR ...`, which a generic plan could not index.
    if tenant_id is None:
        rows: list[asyncpg.Record] = await conn.fetch(_SAVINGS.format(tenant=""), first, last)
    else:
        rows = await conn.fetch(_SAVINGS.format(tenant=" AND d.tenant_id = $3"), first, last, tenant_id)
    return rows


_REQUEST_COLUMNS = """e.request_id, e.attempt, e.tenant_id, e.key_id, e.project_id, e.requested_model,
       e.served_model, e.front_end, e.route, e.status, e.http_status, e.error_code, e.stream, e.api,
       e.prompt_tokens, e.cached_tokens, e.completion_tokens, e.reasoning_tokens, e.billed_usd,
       e.direct_billed_usd, e.estimated, e.end_user, e.tags, e.started_at, e.first_token_at, e.ended_at"""
_ORDER = "ORDER BY e.started_at DESC, e.request_id DESC, e.attempt DESC"
_NAMES = """SELECT r.*, t.name AS tenant_name, k.prefix AS key_prefix, k.name AS key_name, p.name AS project_name
FROM ({inner}) r LEFT JOIN tenants t ON t.id = r.tenant_id LEFT JOIN api_keys k ON k.id = r.key_id
LEFT JOIN projects p ON p.id = r.project_id
ORDER BY r.started_at DESC, r.request_id DESC, r.attempt DESC"""

_ONE_TENANT = f"""SELECT {_REQUEST_COLUMNS} FROM usage_events e
WHERE e.tenant_id = $1 AND e.started_at >= $2 AND e.started_at < $3 {_ORDER} LIMIT $4"""

# Each tenant's newest rows through its index, then the newest of those: no scan of the month.
_EVERY_TENANT = f"""SELECT e.* FROM tenants t CROSS JOIN LATERAL (
    SELECT {_REQUEST_COLUMNS} FROM usage_events e
    WHERE e.tenant_id = t.id AND e.started_at >= $1 AND e.started_at < $2 {_ORDER} LIMIT $3) e
{_ORDER} LIMIT $3"""


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants an inclusive range of UTC days covers: [first 00:00, the day after last)."""
    return (datetime.combine(first, time(), tzinfo=UTC),
            datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC))


async def last_requests(conn: Db, first: date, last: date, tenant_id: uuid.UUID | None,
                        limit: int) -> list[asyncpg.Record]:
    """The newest ledger rows (attempts) in the range, with their tenant's, key's and project's names."""
    start, end = day_bounds(first, last)
    if tenant_id is not None:
        sql, args = _NAMES.format(inner=_ONE_TENANT), [tenant_id, start, end, limit]
    else:
        sql, args = _NAMES.format(inner=_EVERY_TENANT), [start, end, limit]
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


async def thresholds(conn: Db, budget_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """The budgets that set their own alert thresholds (percent of the limit)."""
    rows = await conn.fetch("SELECT budget_id, percents FROM alert_budget_thresholds WHERE budget_id = ANY($1)",
                            budget_ids)
    return {r["budget_id"]: list(r["percents"]) for r in rows}


async def tenant_names(conn: Db) -> dict[uuid.UUID, str]:
    rows = await conn.fetch("SELECT id, name FROM tenants")
    return {r["id"]: r["name"] for r in rows}
