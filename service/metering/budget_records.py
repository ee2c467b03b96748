"""Budget records: create or replace, list with the current period's spend, delete.

Enforcement (service.metering.admission) counts each budget's spend in quota_counters under
the scope `budget:<id>`; the spend listed here is read from that row for the current period,
found with enforcement's own period_start so both always name the same period.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from service.metering.admission import period_start

PERIODS = ("day", "month")


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    id: uuid.UUID
    tenant_id: uuid.UUID
    key_id: uuid.UUID | None
    key_prefix: str | None
    period: str
    limit_usd: Decimal
    hard: bool
    created_at: datetime
    current_period_start: datetime
    spent_usd: Decimal  # settled spend flushed to the shared counter
    leased_usd: Decimal  # slices gateway processes hold right now (reserved or spent, not yet flushed)

    def as_json(self) -> dict:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "key_id": str(self.key_id) if self.key_id else None,
            "key_prefix": self.key_prefix,
            "period": self.period,
            "limit_usd": format(self.limit_usd, "f"),
            "hard": self.hard,
            "created_at": self.created_at.isoformat(),
            "current_period_start": self.current_period_start.isoformat(),
            "spent_usd": format(self.spent_usd, "f"),
            "leased_usd": format(self.leased_usd, "f"),
        }


_SELECT = """
SELECT b.id, b.tenant_id, b.key_id, k.prefix AS key_prefix, b.period, b.limit_usd, b.hard, b.created_at,
       s.current_period_start,
       COALESCE((SELECT c.used FROM quota_counters c
                 WHERE c.scope = 'budget:' || b.id AND c.period_start = s.current_period_start),
                0::numeric(20, 10)) AS spent_usd,
       COALESCE((SELECT sum(l.granted) FROM quota_leases l
                 WHERE l.scope = 'budget:' || b.id AND l.period_start = s.current_period_start),
                0::numeric(20, 10)) AS leased_usd
FROM budgets b
CROSS JOIN LATERAL (SELECT CASE b.period WHEN 'day' THEN $1::timestamptz ELSE $2::timestamptz END
                    AS current_period_start) s
LEFT JOIN api_keys k ON k.id = b.key_id
"""

# The conflict target repeats the unique index's expression so Postgres can infer it.
_UPSERT = """
INSERT INTO budgets (id, tenant_id, key_id, period, limit_usd, hard)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, COALESCE(key_id, '00000000-0000-0000-0000-000000000000'::uuid), period)
DO UPDATE SET limit_usd = EXCLUDED.limit_usd, hard = EXCLUDED.hard
RETURNING id, (xmax = 0) AS created
"""


def _record(row: asyncpg.Record) -> BudgetRecord:
    return BudgetRecord(**{k: row[k] for k in BudgetRecord.__slots__})


def _period_args(now: datetime | None) -> tuple[datetime, datetime]:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return period_start("day", now), period_start("month", now)


async def resolve_key(conn, tenant_id: uuid.UUID, ref: str) -> uuid.UUID | None:
    """A key of this tenant by id or prefix; None when the tenant has no such key."""
    try:
        key_id = uuid.UUID(ref)
    except ValueError:
        return await conn.fetchval("SELECT id FROM api_keys WHERE prefix = $1 AND tenant_id = $2",
                                   ref, tenant_id)
    return await conn.fetchval("SELECT id FROM api_keys WHERE id = $1 AND tenant_id = $2", key_id, tenant_id)


async def upsert_budget(
    conn,
    tenant_id: uuid.UUID,
    *,
    period: str,
    limit_usd: Decimal,
    hard: bool = True,
    key_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[BudgetRecord, bool]:
    """One budget per tenant (or key) and period: set it, replacing any limit already there.

    Returns the record and whether it was created (rather than updated).
    """
    if period not in PERIODS:
        raise ValueError(f"unknown budget period {period!r}")
    row = await conn.fetchrow(_UPSERT, uuid.uuid4(), tenant_id, key_id, period, limit_usd, hard)
    record = await get_budget(conn, row["id"], now=now)
    return record, row["created"]


async def get_budget(conn, budget_id: uuid.UUID, *, now: datetime | None = None) -> BudgetRecord | None:
    row = await conn.fetchrow(_SELECT + " WHERE b.id = $3", *_period_args(now), budget_id)
    return _record(row) if row else None


async def list_budgets(conn, tenant_id: uuid.UUID, *, now: datetime | None = None) -> list[BudgetRecord]:
    rows = await conn.fetch(
        _SELECT + " WHERE b.tenant_id = $3 ORDER BY b.key_id NULLS FIRST, k.prefix, b.period",
        *_period_args(now),
        tenant_id,
    )
    return [_record(r) for r in rows]


async def delete_budget(conn, budget_id: uuid.UUID, *, now: datetime | None = None) -> BudgetRecord | None:
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
