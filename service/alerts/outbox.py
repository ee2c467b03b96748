"""The alert outbox in Postgres: what delivery workers claim and record, and what the admin lists.

Events and their delivery rows are written by the spend calls themselves (0006_alerts). A worker
claims due rows with FOR UPDATE SKIP LOCKED, counts the attempt and moves `next_attempt_at` one
lease ahead in the same statement, so an attempt number belongs to one worker, and a worker that
dies leaves its rows due again when the lease runs out: delivery is at least once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from service.db.pool import Conn

EVENT_STATUSES = ("pending", "delivered", "failed", "cancelled", "no_webhook")

_CLAIM = """
WITH due AS (
    SELECT id FROM alert_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now() AND webhook_id IS NOT NULL
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE alert_deliveries d
    SET attempts = d.attempts + 1, last_attempt_at = now(),
        next_attempt_at = now() + make_interval(secs => $2)
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.attempts, d.target, d.event_id, d.webhook_id
), abandoned AS (
    UPDATE alert_delivery_attempts a
    SET ended_at = now(), error = 'no outcome recorded before the lease ran out'
    FROM claimed c WHERE a.delivery_id = c.id AND a.ended_at IS NULL
), started AS (
    INSERT INTO alert_delivery_attempts (delivery_id, attempt, holder) SELECT id, attempts, $3 FROM claimed
)
SELECT c.id AS delivery_id, c.attempts AS attempt, c.target, e.id AS event_id, e.tenant_id, e.kind,
       e.data::text AS data, e.created_at, w.url, w.secret
FROM claimed c
JOIN alert_events e ON e.id = c.event_id
JOIN alert_webhooks w ON w.id = c.webhook_id
"""

_DELIVERED = """
UPDATE alert_deliveries
SET status = 'delivered', delivered_at = now(), last_status_code = $2, last_error = NULL
WHERE id = $1 AND status = 'pending'
"""

# Given up when the next try would fall past the delivery's age bound.
_FAILED = """
UPDATE alert_deliveries SET
    last_status_code = $3, last_error = $4, next_attempt_at = now() + make_interval(secs => $5),
    status = CASE WHEN created_at + make_interval(secs => $6) <= now() + make_interval(secs => $5)
                  THEN 'failed' ELSE 'pending' END
WHERE id = $1 AND attempts = $2 AND status = 'pending'
RETURNING status
"""

# Also over an "abandoned" guess: the real outcome, when it arrives late, is the better record.
_ATTEMPT_ENDED = """
UPDATE alert_delivery_attempts SET ended_at = now(), status_code = $3, error = $4
WHERE delivery_id = $1 AND attempt = $2
"""

# Rows whose worker vanished past the age bound (a worker that records an outcome judges it itself).
_EXPIRE = """
WITH expired AS (
    UPDATE alert_deliveries SET status = 'failed',
        last_error = left(format('not delivered within %s s; last error: %s', $1,
                                 COALESCE(last_error, 'none')), 500)
    WHERE status = 'pending' AND next_attempt_at <= now() AND created_at + make_interval(secs => $1) <= now()
    RETURNING id
), closed AS (
    UPDATE alert_delivery_attempts a
    SET ended_at = now(), error = 'no outcome recorded before the lease ran out'
    FROM expired x WHERE a.delivery_id = x.id AND a.ended_at IS NULL
)
SELECT count(*) FROM expired
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed attempt of one delivery, with what it needs to be sent."""

    delivery_id: uuid.UUID
    attempt: int
    target: str  # tenant | operator
    event_id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str
    data: dict[str, Any]
    created_at: datetime
    url: str
    secret: str = field(repr=False)

    def body(self) -> bytes:
        """The event as sent; the same bytes on every attempt."""
        return orjson.dumps({
            "id": str(self.event_id),
            "object": "event",
            "type": self.kind,
            "created_at": self.created_at.isoformat(),
            "tenant_id": str(self.tenant_id),
            "data": self.data,
        })


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def claim(conn: Conn, holder: str, limit: int, lease_seconds: float) -> list[Claimed]:
    rows = await conn.fetch(_CLAIM, limit, lease_seconds, holder)
    return [
        Claimed(r["delivery_id"], r["attempt"], r["target"], r["event_id"], r["tenant_id"], r["kind"],
                orjson.loads(r["data"]), r["created_at"], r["url"], r["secret"])
        for r in rows
    ]


async def record(conn: Conn, claimed: Claimed, outcome: Outcome, *, retry_in: float,
                 max_age: float) -> str | None:
    """Store an attempt's outcome; returns the delivery's status, or None when the attempt was no
    longer its latest (its lease ran out and another worker claimed it since)."""
    async with conn.transaction():
        await conn.execute(_ATTEMPT_ENDED, claimed.delivery_id, claimed.attempt, outcome.status_code,
                           outcome.error)
        if outcome.delivered:
            # Whichever attempt got through, the delivery is done.
            done = await conn.execute(_DELIVERED, claimed.delivery_id, outcome.status_code)
            return "delivered" if done.endswith(" 1") else None
        status: str | None = await conn.fetchval(_FAILED, claimed.delivery_id, claimed.attempt,
                                                 outcome.status_code, outcome.error, retry_in, max_age)
        return status


async def expire(conn: Conn, max_age: float) -> int:
    return int(await conn.fetchval(_EXPIRE, max_age))


# --- the admin's view -----------------------------------------------------------------------------

_STATUS = """
CASE WHEN count(d.id) = 0 THEN 'no_webhook'
     WHEN bool_or(d.status = 'pending') THEN 'pending'
     WHEN bool_or(d.status = 'failed') THEN 'failed'
     WHEN bool_and(d.status = 'delivered') THEN 'delivered'
     ELSE 'cancelled' END
"""

_EVENTS = f"""
SELECT e.id, e.tenant_id, e.kind, e.data::text AS data, e.created_at, {_STATUS} AS status
FROM alert_events e LEFT JOIN alert_deliveries d ON d.event_id = e.id
"""

_ONE = _EVENTS + "WHERE e.id = $1 GROUP BY e.id"

_LIST = _EVENTS + f"""WHERE ($1::uuid IS NULL OR e.tenant_id = $1)
  AND ($2::text IS NULL OR e.kind = $2)
  AND ($3::uuid IS NULL
       OR (e.created_at, e.id) < (SELECT b.created_at, b.id FROM alert_events b WHERE b.id = $3))
GROUP BY e.id
HAVING $4::text IS NULL OR {_STATUS} = $4
ORDER BY e.created_at DESC, e.id DESC
LIMIT $5
"""

_DELIVERIES = """
SELECT d.id, d.event_id, d.target, d.webhook_id, w.url, d.status, d.attempts, d.next_attempt_at,
       d.last_attempt_at, d.last_status_code, d.last_error, d.delivered_at, d.created_at
FROM alert_deliveries d LEFT JOIN alert_webhooks w ON w.id = d.webhook_id
WHERE d.event_id = ANY($1::uuid[])
ORDER BY d.target DESC, d.created_at
"""

_ATTEMPTS = """
SELECT a.delivery_id, a.attempt, a.holder, a.started_at, a.ended_at, a.status_code, a.error
FROM alert_delivery_attempts a JOIN alert_deliveries d ON d.id = a.delivery_id
WHERE d.event_id = $1
ORDER BY a.delivery_id, a.attempt
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _delivery_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "target": row["target"],
        "webhook_id": str(row["webhook_id"]) if row["webhook_id"] else None,
        "url": row["url"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": _iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "last_attempt_at": _iso(row["last_attempt_at"]),
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "delivered_at": _iso(row["delivered_at"]),
        "created_at": _iso(row["created_at"]),
    }


def _event_json(row: asyncpg.Record, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "object": "event",
        "type": row["kind"],
        "tenant_id": str(row["tenant_id"]),
        "created_at": _iso(row["created_at"]),
        "status": row["status"],
        "data": orjson.loads(row["data"]),
        "deliveries": deliveries,
    }


async def list_events(conn: Conn, *, tenant_id: uuid.UUID | None = None,
                      kind: str | None = None, status: str | None = None,
                      before: uuid.UUID | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first; `before` is the id of the last event of the previous page."""
    rows = await conn.fetch(_LIST, tenant_id, kind, before, status, limit)
    by_event: dict[uuid.UUID, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    for d in await conn.fetch(_DELIVERIES, list(by_event)):
        by_event[d["event_id"]].append(_delivery_json(d))
    return [_event_json(r, by_event[r["id"]]) for r in rows]


async def get_event(conn: Conn, event_id: uuid.UUID) -> dict[str, Any] | None:
    """One event with its deliveries and each delivery's attempts."""
    row = await conn.fetchrow(_ONE, event_id)
    if row is None:
        return None
    deliveries = [_delivery_json(d) for d in await conn.fetch(_DELIVERIES, [event_id])]
    attempts: dict[str, list[dict[str, Any]]] = {d["id"]: [] for d in deliveries}
    for a in await conn.fetch(_ATTEMPTS, event_id):
        attempts[str(a["delivery_id"])].append({
            "attempt": a["attempt"],
            "holder": a["holder"],
            "started_at": _iso(a["started_at"]),
            "ended_at": _iso(a["ended_at"]),
            "status_code": a["status_code"],
            "error": a["error"],
        })
    for d in deliveries:
        d["attempt_log"] = attempts[d["id"]]
    return _event_json(row, deliveries)
