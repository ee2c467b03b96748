"""A key after its creation: find it, change it (name, limits, expiry, metadata, models, project),
rotate its secret with a grace period.

Rotation replaces the secret, not the key: the key keeps its id, so its rate limits, budgets and
usage attribution carry on, and the replaced secret keeps authenticating the same key until its
grace period ends (zero ends it at once). A key holds at most one replaced secret: rotating again
during a grace period ends the older secret's at once. Every function returns what the caller must
announce on the auth channel (the prefixes whose cached entries are now wrong).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from service.auth.keys import hash_key, key_prefix, new_key
from service.auth.tenants import KEY_COLS, KeyRecord, key_record, metadata_json
from service.db.pool import Conn, Db, returned

MAX_GRACE = timedelta(days=30)
_FIELDS = ("name", "rpm_limit", "tpm_limit", "expires_at", "metadata", "allowed_models", "project_id")


class KeyRevoked(Exception):
    """A revoked key cannot be rotated (or it would authenticate again)."""


async def find_key(conn: Db, ref: str, tenant_id: uuid.UUID | None = None) -> KeyRecord | None:
    """A key by id, or by either of its secrets' prefixes; with a tenant, only that tenant's."""
    try:
        row = await conn.fetchrow(f"SELECT {KEY_COLS} FROM api_keys WHERE id = $1", uuid.UUID(ref))
    except ValueError:
        row = await conn.fetchrow(f"SELECT {KEY_COLS} FROM api_keys WHERE prefix = $1 OR previous_prefix = $1"
                                  " LIMIT 1", ref)
    if row is None or (tenant_id is not None and row["tenant_id"] != tenant_id):
        return None
    return key_record(row)


def prefixes(record: KeyRecord) -> list[str]:
    """Every prefix the key authenticates under now."""
    return [record.prefix, *([record.previous_prefix] if record.previous_prefix else [])]


async def update_key(conn: Db, key_id: uuid.UUID, **changes: Any) -> KeyRecord | None:
    """Set any of name, rpm_limit, tpm_limit, expires_at, metadata, allowed_models, project_id."""
    sets: list[str] = []
    args: list[Any] = [key_id]
    for column, value in changes.items():
        if column not in _FIELDS:
            raise ValueError(f"unknown key field {column}")
        args.append(metadata_json(value) if column == "metadata" else value)
        sets.append(f"{column} = ${len(args)}" + ("::jsonb" if column == "metadata" else ""))
    if not sets:
        row = await conn.fetchrow(f"SELECT {KEY_COLS} FROM api_keys WHERE id = $1", key_id)
    else:
        row = await conn.fetchrow(f"UPDATE api_keys SET {', '.join(sets)} WHERE id = $1 RETURNING {KEY_COLS}", *args)
    return key_record(row) if row else None


async def rotate_key(conn: Conn, key_id: uuid.UUID, grace: timedelta) -> tuple[str, KeyRecord, list[str]]:
    """A new secret for the key: (its plaintext, shown once; the key; the prefixes to announce).

    The current secret keeps working for `grace` (none: it stops now)."""
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise ValueError(f"the grace period is 0 to {MAX_GRACE.days} days")
    key = new_key()
    async with conn.transaction():
        old = await conn.fetchrow("SELECT prefix, previous_prefix, revoked_at FROM api_keys WHERE id = $1 FOR UPDATE",
                                  key_id)
        if old is None:
            raise LookupError(str(key_id))
        if old["revoked_at"] is not None:
            raise KeyRevoked(old["prefix"])
        # SET reads the row as it was: the current secret becomes the previous one.
        row = await conn.fetchrow(
            f"""UPDATE api_keys SET
                    previous_prefix = CASE WHEN $4 > 0 THEN prefix END,
                    previous_key_hash = CASE WHEN $4 > 0 THEN key_hash END,
                    previous_expires_at = CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4) END,
                    prefix = $2, key_hash = $3, rotated_at = now()
                WHERE id = $1 RETURNING {KEY_COLS}""",
            key_id, key_prefix(key), hash_key(key), grace.total_seconds())
    announce = [old["prefix"], key_prefix(key), *([old["previous_prefix"]] if old["previous_prefix"] else [])]
    return key, key_record(returned(row)), announce
