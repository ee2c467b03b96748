"""Console sessions in Postgres: sign in, resolve on every request, sign out.

The session id lives only in the browser's HttpOnly cookie; the table keeps its SHA-256. Every
resolve re-reads the key a tenant signed in with (and the tenant), so a revoked or expired key,
a rotated-out secret past its grace period or a disabled tenant ends the session at the next
request on any process: there is no per-process copy to go stale. The anti-CSRF token is derived
from the session id, so it needs no storage and is worthless without the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.db.pool import Db

# A session ends this long after sign-in, or after this long without a request.
SESSION_TTL = timedelta(hours=8)
IDLE_TTL = timedelta(hours=1)
# last_seen_at is written at most this often (a page load makes several requests).
TOUCH_EVERY = timedelta(seconds=60)

_CSRF_LABEL = b"switchyard-console-csrf\x00"
_OPERATOR_LABEL = b"switchyard-console-operator\x00"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """Who a console request acts for: a tenant (through one of its keys) or the operator."""

    id_hash: bytes
    kind: str  # tenant | operator
    tenant_id: uuid.UUID | None
    tenant_name: str | None
    key_id: uuid.UUID | None
    key_prefix: str | None
    expires_at: datetime

    @property
    def operator(self) -> bool:
        return self.kind == "operator"


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def hash_session_id(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8")).digest()


def csrf_token(session_id: str) -> str:
    """The anti-CSRF token of a session: the page sends it back in a header on every change."""
    return hashlib.sha256(_CSRF_LABEL + session_id.encode("utf-8")).hexdigest()


def csrf_matches(session_id: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_id).encode(), presented.encode())


def operator_tag(session_id: str, admin_token: str) -> bytes:
    """Binds an operator session to the admin token it signed in with, without storing the token."""
    return hashlib.sha256(_OPERATOR_LABEL + session_id.encode("utf-8") + b"\x00"
                          + admin_token.encode("utf-8")).digest()


_PURGE = "DELETE FROM console_sessions WHERE expires_at <= now() OR last_seen_at <= now() - $1::interval"

_INSERT = """
INSERT INTO console_sessions (id_hash, kind, tenant_id, key_id, key_prefix, operator_tag, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, LEAST(now() + $7::interval, COALESCE($8::timestamptz, 'infinity')))
RETURNING expires_at
"""

# The session with what still vouches for it: the key and secret it signed in with, the tenant.
_RESOLVE = """
WITH s AS (
    SELECT * FROM console_sessions WHERE id_hash = $1
), touched AS (
    UPDATE console_sessions c SET last_seen_at = now()
    FROM s WHERE c.id_hash = s.id_hash AND s.last_seen_at < now() - $3::interval
      AND s.expires_at > now() AND s.last_seen_at > now() - $2::interval
)
SELECT s.kind, s.tenant_id, s.key_id, s.key_prefix, s.operator_tag, s.expires_at, t.name AS tenant_name,
       (s.expires_at > now() AND s.last_seen_at > now() - $2::interval) AS fresh,
       (s.kind = 'operator' OR (
            k.revoked_at IS NULL AND t.status = 'active'
            AND (k.expires_at IS NULL OR k.expires_at > now())
            AND (k.prefix = s.key_prefix
                 OR (k.previous_prefix = s.key_prefix AND k.previous_expires_at > now())))) AS vouched,
       LEAST(s.expires_at, k.expires_at,
             CASE WHEN k.previous_prefix = s.key_prefix THEN k.previous_expires_at END) AS ends_at
FROM s LEFT JOIN api_keys k ON k.id = s.key_id LEFT JOIN tenants t ON t.id = s.tenant_id
"""


async def sign_in_tenant(conn: Db, session_id: str, *, tenant_id: uuid.UUID, key_id: uuid.UUID,
                         key_prefix: str, key_expires_at: datetime | None) -> datetime:
    """Store a tenant's session; it never outlives the secret it signed in with. Returns its expiry."""
    await conn.execute(_PURGE, IDLE_TTL)
    expires: datetime = await conn.fetchval(_INSERT, hash_session_id(session_id), "tenant", tenant_id, key_id,
                                            key_prefix, None, SESSION_TTL, key_expires_at)
    return expires


async def sign_in_operator(conn: Db, session_id: str, admin_token: str) -> datetime:
    await conn.execute(_PURGE, IDLE_TTL)
    expires: datetime = await conn.fetchval(_INSERT, hash_session_id(session_id), "operator", None, None, None,
                                            operator_tag(session_id, admin_token), SESSION_TTL, None)
    return expires


async def resolve(conn: Db, session_id: str, admin_token: str | None) -> ConsoleSession | None:
    """The live session this id names, or None; a session that no longer holds is deleted."""
    id_hash = hash_session_id(session_id)
    row = await conn.fetchrow(_RESOLVE, id_hash, IDLE_TTL, TOUCH_EVERY)
    if row is None:
        return None
    good = bool(row["fresh"]) and bool(row["vouched"])
    if good and row["kind"] == "operator":
        good = admin_token is not None and hmac.compare_digest(bytes(row["operator_tag"]),
                                                              operator_tag(session_id, admin_token))
    if not good:
        await conn.execute("DELETE FROM console_sessions WHERE id_hash = $1", id_hash)
        return None
    return ConsoleSession(id_hash=id_hash, kind=row["kind"], tenant_id=row["tenant_id"],
                          tenant_name=row["tenant_name"], key_id=row["key_id"], key_prefix=row["key_prefix"],
                          expires_at=row["ends_at"])


async def sign_out(conn: Db, session_id: str) -> bool:
    deleted: str = await conn.execute("DELETE FROM console_sessions WHERE id_hash = $1",
                                      hash_session_id(session_id))
    return deleted.endswith(" 1")
