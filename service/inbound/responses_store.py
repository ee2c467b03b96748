"""Stored responses (`store: true`): kept per tenant for a retention period.

A stored row holds the Response object (what `GET /v1/responses/{id}` returns) and the
conversation up to and including it (history, that turn's input, its output: what a later
`previous_response_id` continues). A tenant only ever sees its own rows, and an expired row is as
good as gone before `purge_expired` deletes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from service.db.pool import Conn

_INSERT = """
INSERT INTO stored_responses (id, tenant_id, created_at, expires_at, model, response, conversation)
VALUES ($1, $2, now(), now() + $3::interval, $4, $5::jsonb, $6::jsonb)
"""

_SELECT = """
SELECT id, tenant_id, created_at, expires_at, model, response::text AS response,
       conversation::text AS conversation
FROM stored_responses
WHERE id = $1 AND tenant_id = $2 AND expires_at > now()
"""

# An expired row is deleted too, but reported as not found, as a read would report it.
_DELETE = "DELETE FROM stored_responses WHERE id = $1 AND tenant_id = $2 RETURNING expires_at > now()"

# SKIP LOCKED lets several replicas purge at once without waiting on each other's batches.
_PURGE = """
WITH doomed AS (
    SELECT id FROM stored_responses WHERE expires_at <= now()
    ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
DELETE FROM stored_responses s USING doomed WHERE s.id = doomed.id
"""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    tenant_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    model: str
    response: dict[str, Any]
    conversation: list[dict[str, Any]]


async def save_response(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    response: dict[str, Any],
    conversation: list[dict[str, Any]],
    retention: timedelta,
) -> None:
    """Store a response under its id for `retention`; a second save of one id raises."""
    if retention <= timedelta(0):
        raise ValueError("retention must be positive")
    await conn.execute(
        _INSERT,
        response["id"],
        tenant_id,
        retention,
        str(response.get("model") or ""),
        orjson.dumps(response).decode(),
        orjson.dumps(conversation).decode(),
    )


async def load_response(
    conn: Conn, tenant_id: uuid.UUID, response_id: str
) -> StoredResponse | None:
    """The tenant's live response of that id; None when absent, expired, or another tenant's."""
    row = await conn.fetchrow(_SELECT, response_id, tenant_id)
    if row is None:
        return None
    return StoredResponse(
        id=row["id"],
        tenant_id=row["tenant_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        model=row["model"],
        response=orjson.loads(row["response"]),
        conversation=orjson.loads(row["conversation"]),
    )


async def delete_response(conn: Conn, tenant_id: uuid.UUID, response_id: str) -> bool:
    """Remove the tenant's response; True when a live one was removed."""
    live: bool | None = await conn.fetchval(_DELETE, response_id, tenant_id)
    return bool(live)


async def purge_expired(conn: Conn, limit: int) -> int:
    """Delete up to `limit` expired responses, oldest first; returns how many went."""
    status: str = await conn.execute(_PURGE, limit)
    return int(status.rsplit(" ", 1)[1])
