"""Where alerts go and when a budget raises them: webhook records and a budget's thresholds.

A tenant has at most one webhook, and so has the operator (tenant_id NULL); every event of a
tenant goes to both. The secret is shown when it is made (created or rotated), never listed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from service.alerts.rules import DEFAULT_THRESHOLDS
from service.alerts.signing import generate_secret
from service.db.pool import Conn, returned

_COLUMNS = "id, tenant_id, url, source, created_at, updated_at"
_NO_TENANT = "'00000000-0000-0000-0000-000000000000'::uuid"
_OWNER = f"COALESCE(tenant_id, {_NO_TENANT})"

# The conflict target repeats the unique index's expression so Postgres can infer it.
_UPSERT = f"""
INSERT INTO alert_webhooks AS w (id, tenant_id, url, secret, source) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT ({_OWNER}) DO UPDATE SET
    url = EXCLUDED.url, source = EXCLUDED.source, updated_at = now(),
    secret = CASE WHEN $6 THEN EXCLUDED.secret ELSE w.secret END
RETURNING {_COLUMNS}, secret, (xmax = 0) AS created
"""


@dataclass(frozen=True, slots=True)
class Webhook:
    id: uuid.UUID
    tenant_id: uuid.UUID | None  # None: the operator's
    url: str
    source: str  # api | env
    created_at: datetime
    updated_at: datetime

    def as_json(self, secret: str | None = None) -> dict[str, object]:
        out: dict[str, object] = {
            "id": str(self.id),
            "target": "operator" if self.tenant_id is None else "tenant",
            "tenant_id": str(self.tenant_id) if self.tenant_id else None,
            "url": self.url,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if secret is not None:
            out["secret"] = secret
        return out


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(row["id"], row["tenant_id"], row["url"], row["source"], row["created_at"],
                   row["updated_at"])


async def put_webhook(conn: Conn, tenant_id: uuid.UUID | None, url: str, *,
                      rotate_secret: bool = False, secret: str | None = None,
                      source: str = "api") -> tuple[Webhook, str | None, bool]:
    """Create or re-point the owner's webhook; returns it, its secret when that is new (created or
    rotated) and otherwise None, and whether it was created. `secret` sets a given secret."""
    replace = rotate_secret or secret is not None
    row = returned(await conn.fetchrow(_UPSERT, uuid.uuid4(), tenant_id, url, secret or generate_secret(),
                                       source, replace))
    shown = row["secret"] if row["created"] or replace else None
    return _webhook(row), shown, row["created"]


async def get_webhook(conn: Conn, tenant_id: uuid.UUID | None) -> Webhook | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM alert_webhooks WHERE {_OWNER} = COALESCE($1, {_NO_TENANT})", tenant_id)
    return _webhook(row) if row else None


async def delete_webhook(conn: Conn, tenant_id: uuid.UUID | None) -> Webhook | None:
    """Remove the owner's webhook; what it had not yet received is cancelled (still listed)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM alert_webhooks WHERE {_OWNER} = COALESCE($1, {_NO_TENANT}) FOR UPDATE",
            tenant_id)
        if row is None:
            return None
        await conn.execute(
            "UPDATE alert_deliveries SET status = 'cancelled', last_error = 'the webhook was removed' "
            "WHERE webhook_id = $1 AND status = 'pending'", row["id"])
        await conn.execute("DELETE FROM alert_webhooks WHERE id = $1", row["id"])
    return _webhook(row)


async def sync_operator_webhook(conn: Conn, url: str, secret: str) -> Webhook:
    """The operator's webhook as the environment configures it (each process at start)."""
    webhook, _, _ = await put_webhook(conn, None, url, secret=secret, source="env")
    return webhook


@dataclass(frozen=True, slots=True)
class Thresholds:
    budget_id: uuid.UUID
    percents: tuple[Decimal, ...]
    default: bool

    def as_json(self) -> dict[str, object]:
        return {
            "budget_id": str(self.budget_id),
            "thresholds": [format(p.normalize(), "f") for p in self.percents],
            "default": self.default,
        }


async def get_thresholds(conn: Conn, budget_id: uuid.UUID) -> Thresholds | None:
    """The budget's thresholds (its own or the default); None when there is no such budget."""
    row = await conn.fetchrow(
        "SELECT t.percents FROM budgets b LEFT JOIN alert_budget_thresholds t ON t.budget_id = b.id "
        "WHERE b.id = $1", budget_id)
    if row is None:
        return None
    if row["percents"] is None:
        return Thresholds(budget_id, DEFAULT_THRESHOLDS, True)
    return Thresholds(budget_id, tuple(row["percents"]), False)


async def set_thresholds(conn: Conn, budget_id: uuid.UUID,
                         percents: list[Decimal] | None) -> Thresholds | None:
    """Give the budget its own thresholds ([] for none), or the default again with None."""
    if percents is None:
        await conn.execute("DELETE FROM alert_budget_thresholds WHERE budget_id = $1", budget_id)
    else:
        try:
            await conn.execute(
                "INSERT INTO alert_budget_thresholds (budget_id, percents) VALUES ($1, $2) "
                "ON CONFLICT (budget_id) DO UPDATE SET percents = EXCLUDED.percents, updated_at = now()",
                budget_id, sorted(set(percents)))
        except asyncpg.ForeignKeyViolationError:
            return None
    return await get_thresholds(conn, budget_id)
