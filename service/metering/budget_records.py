"""Budget records: create or replace, list with the current period's spend, delete.

A budget binds one level -- the whole tenant, one project, or one key -- for a calendar day, a
calendar month (UTC) or a rolling window of whole hours. Enforcement (service.metering.admission)
counts each budget's spend in quota_counters under the scope `budget:<id>`; the spend listed here
is read from those rows for the current period (for a rolling window, the hourly buckets it
covers), found with enforcement's own period_start so both always name the same period.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from service.db.pool import Conn, Db, returned
from service.metering.admission import period_start

PERIODS = ("day", "month", "rolling")
MAX_WINDOW_HOURS = 744  # 31 days of hourly buckets
NIL = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    id: uuid.UUID
    tenant_id: uuid.UUID
    project_id: uuid.UUID | None
    project_name: str | None
    key_id: uuid.UUID | None
    key_prefix: str | None
    period: str
    window_hours: int | None
    limit_usd: Decimal
    hard: bool
    created_at: datetime
    current_period_start: datetime  # for a rolling window, the start of its oldest bucket
    spent_usd: Decimal  # settled spend flushed to the shared counter
    leased_usd: Decimal  # slices gateway processes hold right now (reserved or spent, not yet flushed)

    @property
    def level(self) -> str:
        if self.key_id is not None:
            return "key"
        return "project" if self.project_id is not None else "tenant"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "level": self.level,
            "project_id": str(self.project_id) if self.project_id else None,
            "project_name": self.project_name,
            "key_id": str(self.key_id) if self.key_id else None,
            "key_prefix": self.key_prefix,
            "period": self.period,
            "window_hours": self.window_hours,
            "limit_usd": format(self.limit_usd, "f"),
            "hard": self.hard,
            "created_at": self.created_at.isoformat(),
            "current_period_start": self.current_period_start.isoformat(),
            "spent_usd": format(self.spent_usd, "f"),
            "leased_usd": format(self.leased_usd, "f"),
        }


# $1 day start, $2 month start, $3 this hour's bucket. A calendar budget counts one period; a
# rolling one the hourly buckets of its window, this one and the (window - 1) before it.
_SELECT = """
SELECT b.id, b.tenant_id, b.project_id, p.name AS project_name, b.key_id, k.prefix AS key_prefix, b.period,
       b.window_hours, b.limit_usd, b.hard, b.created_at, s.current_period_start,
       COALESCE((SELECT sum(c.used) FROM quota_counters c
                 WHERE c.scope = 'budget:' || b.id
                   AND c.period_start BETWEEN s.current_period_start AND s.last_bucket),
                0::numeric(20, 10)) AS spent_usd,
       COALESCE((SELECT sum(l.granted) FROM quota_leases l
                 WHERE l.scope = 'budget:' || b.id
                   AND l.period_start BETWEEN s.current_period_start AND s.last_bucket),
                0::numeric(20, 10)) AS leased_usd
FROM budgets b
CROSS JOIN LATERAL (
    SELECT CASE b.period WHEN 'day' THEN $1::timestamptz WHEN 'month' THEN $2::timestamptz
                         ELSE $3::timestamptz - make_interval(hours => b.window_hours - 1) END AS current_period_start,
           CASE b.period WHEN 'day' THEN $1::timestamptz WHEN 'month' THEN $2::timestamptz
                         ELSE $3::timestamptz END AS last_bucket) s
LEFT JOIN api_keys k ON k.id = b.key_id
LEFT JOIN projects p ON p.id = b.project_id
"""

# The conflict target repeats the unique index's expressions so Postgres can infer it.
_UPSERT = """
INSERT INTO budgets (id, tenant_id, project_id, key_id, period, window_hours, limit_usd, hard)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, COALESCE(project_id, '00000000-0000-0000-0000-000000000000'::uuid),
             COALESCE(key_id, '00000000-0000-0000-0000-000000000000'::uuid), period, COALESCE(window_hours, 0))
DO UPDATE SET limit_usd = EXCLUDED.limit_usd, hard = EXCLUDED.hard
RETURNING id, (xmax = 0) AS created
"""


def _record(row: asyncpg.Record) -> BudgetRecord:
    return BudgetRecord(**{k: row[k] for k in BudgetRecord.__slots__})


def _period_args(now: datetime | None) -> tuple[datetime, datetime, datetime]:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return period_start("day", now), period_start("month", now), period_start("hour", now)


async def resolve_key(conn: Db, tenant_id: uuid.UUID, ref: str) -> uuid.UUID | None:
    """A key of this tenant by id or prefix; None when the tenant has no such key."""
    found: uuid.UUID | None
    try:
        key_id = uuid.UUID(ref)
    except ValueError:
        found = await conn.fetchval("SELECT id FROM api_keys WHERE prefix = $1 AND tenant_id = $2",
                                    ref, tenant_id)
    else:
        found = await conn.fetchval("SELECT id FROM api_keys WHERE id = $1 AND tenant_id = $2", key_id, tenant_id)
    return found


async def upsert_budget(
    conn: Db,
    tenant_id: uuid.UUID,
    *,
    period: str,
    limit_usd: Decimal,
    hard: bool = True,
    key_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    window_hours: int | None = None,
    now: datetime | None = None,
) -> tuple[BudgetRecord, bool]:
    """One budget per level, period (and window): set it, replacing any limit already there.

    Returns the record and whether it was created (rather than updated).
    """
    if period not in PERIODS:
        raise ValueError(f"unknown budget period {period!r}")
    if (period == "rolling") != (window_hours is not None):
        raise ValueError("a rolling budget, and only one, names its window in hours")
    if window_hours is not None and not 1 <= window_hours <= MAX_WINDOW_HOURS:
        raise ValueError(f"a rolling window is 1 to {MAX_WINDOW_HOURS} hours")
    if key_id is not None and project_id is not None:
        raise ValueError("a budget binds a key or a project, not both")
    row = returned(await conn.fetchrow(_UPSERT, uuid.uuid4(), tenant_id, project_id, key_id, period,
                                       window_hours, limit_usd, hard))
    record = await get_budget(conn, row["id"], now=now)
    if record is None:
        raise RuntimeError(f"budget {row['id']} vanished right after it was written")
    return record, row["created"]


async def get_budget(conn: Db, budget_id: uuid.UUID, *, now: datetime | None = None) -> BudgetRecord | None:
    row = await conn.fetchrow(_SELECT + " WHERE b.id = $4", *_period_args(now), budget_id)
    return _record(row) if row else None


_LIST_ORDER = (' ORDER BY b.key_id IS NOT NULL, b.project_id IS NOT NULL, p.name COLLATE "C", k.prefix, b.period,'
               ' b.window_hours NULLS FIRST')


async def list_budgets(conn: Db, tenant_id: uuid.UUID, *, project_id: uuid.UUID | None = None,
                       now: datetime | None = None) -> list[BudgetRecord]:
    """The tenant's budgets (or one project's): the tenant's own first, then projects', then keys'."""
    where = " WHERE b.tenant_id = $4" + (" AND b.project_id = $5" if project_id is not None else "")
    args: list[object] = [*_period_args(now), tenant_id]
    if project_id is not None:
        args.append(project_id)
    rows = await conn.fetch(_SELECT + where + _LIST_ORDER, *args)
    return [_record(r) for r in rows]


async def list_all_budgets(conn: Db, *, now: datetime | None = None) -> list[BudgetRecord]:
    """Every tenant's budgets (the operator's view), each tenant's in list_budgets' order."""
    rows = await conn.fetch(_SELECT + _LIST_ORDER.replace(" ORDER BY ", " ORDER BY b.tenant_id, ", 1),
                            *_period_args(now))
    return [_record(r) for r in rows]


async def delete_budget(conn: Conn, budget_id: uuid.UUID, *, now: datetime | None = None) -> BudgetRecord | None:
    """Delete a budget and its counters; returns what was deleted, or None."""
    async with conn.transaction():
        record = await get_budget(conn, budget_id, now=now)
        if record is not None:
            await conn.execute("DELETE FROM budgets WHERE id = $1", budget_id)
            await conn.execute("DELETE FROM quota_leases WHERE scope = $1", _scope(budget_id))
            await conn.execute("DELETE FROM quota_counters WHERE scope = $1", _scope(budget_id))
    return record


def _scope(budget_id: uuid.UUID) -> str:
    """The quota scope enforcement counts this budget under."""
    return f"budget:{budget_id}"
