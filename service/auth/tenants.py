"""Tenant, key and policy records: create, read, update, revoke (admin API and CLI share these)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg
import orjson

from service.auth.keys import hash_key, key_prefix, new_key
from service.db.pool import Db, returned


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: uuid.UUID
    name: str
    status: str
    markup: Decimal
    allowed_models: tuple[str, ...] | None
    denied_front_ends: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "name": self.name,
            "status": self.status,
            "markup": str(self.markup),
            "allowed_models": list(self.allowed_models) if self.allowed_models is not None else None,
            "denied_front_ends": list(self.denied_front_ends),
        }


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: uuid.UUID
    tenant_id: uuid.UUID
    prefix: str
    name: str | None
    rpm_limit: int | None
    tpm_limit: int | None
    created_at: datetime
    revoked_at: datetime | None
    project_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    metadata: dict[str, str] | None = None
    allowed_models: tuple[str, ...] | None = None
    rotated_at: datetime | None = None
    previous_prefix: str | None = None  # a rotated-out secret still in its grace period
    previous_expires_at: datetime | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "project_id": str(self.project_id) if self.project_id else None,
            "prefix": self.prefix,
            "name": self.name,
            "rpm_limit": self.rpm_limit,
            "tpm_limit": self.tpm_limit,
            "allowed_models": list(self.allowed_models) if self.allowed_models is not None else None,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat(),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "rotated_at": _iso(self.rotated_at),
            "previous_prefix": self.previous_prefix,
            "previous_expires_at": _iso(self.previous_expires_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _tenant(row: asyncpg.Record) -> TenantRecord:
    allowed = row["allowed_models"]
    return TenantRecord(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        markup=row["markup"],
        allowed_models=tuple(allowed) if allowed is not None else None,
        denied_front_ends=tuple(row["denied_front_ends"] or ()),
    )


def key_record(row: asyncpg.Record) -> KeyRecord:
    allowed = row["allowed_models"]
    return KeyRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        prefix=row["prefix"],
        name=row["name"],
        rpm_limit=row["rpm_limit"],
        tpm_limit=row["tpm_limit"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        project_id=row["project_id"],
        expires_at=row["expires_at"],
        metadata=orjson.loads(row["metadata"]) if row["metadata"] is not None else None,
        allowed_models=tuple(allowed) if allowed is not None else None,
        rotated_at=row["rotated_at"],
        previous_prefix=row["previous_prefix"],
        previous_expires_at=row["previous_expires_at"],
    )


def metadata_json(metadata: dict[str, str] | None) -> str | None:
    """A key's metadata as the jsonb parameter asyncpg sends (text)."""
    return orjson.dumps(metadata).decode() if metadata is not None else None


_TENANT_COLS = "id, name, status, markup, allowed_models, denied_front_ends"
KEY_COLS = ("id, tenant_id, prefix, name, rpm_limit, tpm_limit, created_at, revoked_at, project_id, expires_at,"
            " metadata, allowed_models, rotated_at, previous_prefix, previous_expires_at")


async def create_tenant(
    conn: Db,
    name: str,
    *,
    markup: Decimal = Decimal(0),
    allowed_models: list[str] | None = None,
    denied_front_ends: list[str] | None = None,
) -> TenantRecord:
    row = await conn.fetchrow(
        f"INSERT INTO tenants (id, name, markup, allowed_models, denied_front_ends)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_TENANT_COLS}",
        uuid.uuid4(),
        name,
        markup,
        allowed_models,
        denied_front_ends or [],
    )
    return _tenant(returned(row))


async def get_tenant(conn: Db, ref: str) -> TenantRecord | None:
    """A tenant by id or by name."""
    try:
        tenant_id = uuid.UUID(ref)
    except ValueError:
        row = await conn.fetchrow(f"SELECT {_TENANT_COLS} FROM tenants WHERE name = $1", ref)
    else:
        row = await conn.fetchrow(f"SELECT {_TENANT_COLS} FROM tenants WHERE id = $1", tenant_id)
    return _tenant(row) if row else None


async def list_tenants(conn: Db) -> list[TenantRecord]:
    rows = await conn.fetch(f"SELECT {_TENANT_COLS} FROM tenants ORDER BY name")
    return [_tenant(r) for r in rows]


async def update_tenant(conn: Db, tenant_id: uuid.UUID, **changes: object) -> TenantRecord | None:
    allowed = {"name", "status", "markup", "allowed_models", "denied_front_ends"}
    sets: list[str] = []
    args: list[object] = [tenant_id]
    for column, value in changes.items():
        if column not in allowed:
            raise ValueError(f"unknown tenant field {column}")
        args.append(value)
        sets.append(f"{column} = ${len(args)}")
    if not sets:
        return await get_tenant(conn, str(tenant_id))
    row = await conn.fetchrow(
        f"UPDATE tenants SET {', '.join(sets)}, updated_at = now() WHERE id = $1 RETURNING {_TENANT_COLS}",
        *args,
    )
    return _tenant(row) if row else None


async def create_key(
    conn: Db,
    tenant_id: uuid.UUID,
    *,
    name: str | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    project_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    metadata: dict[str, str] | None = None,
    allowed_models: list[str] | None = None,
) -> tuple[str, KeyRecord]:
    """A new key: the plaintext is returned here once and never stored."""
    key = new_key()
    row = await conn.fetchrow(
        f"INSERT INTO api_keys (id, tenant_id, prefix, key_hash, name, rpm_limit, tpm_limit, project_id, expires_at,"
        f" metadata, allowed_models) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)"
        f" RETURNING {KEY_COLS}",
        uuid.uuid4(),
        tenant_id,
        key_prefix(key),
        hash_key(key),
        name,
        rpm_limit,
        tpm_limit,
        project_id,
        expires_at,
        metadata_json(metadata),
        allowed_models,
    )
    return key, key_record(returned(row))


async def list_keys(conn: Db, tenant_id: uuid.UUID) -> list[KeyRecord]:
    rows = await conn.fetch(
        f"SELECT {KEY_COLS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at", tenant_id
    )
    return [key_record(r) for r in rows]


async def revoke_key(conn: Db, ref: str) -> KeyRecord | None:
    """Revoke by key id or prefix; every process refuses it on its next authentication check."""
    arg: uuid.UUID | str
    try:
        key_id = uuid.UUID(ref)
        where, arg = "id = $1", key_id
    except ValueError:
        where, arg = "prefix = $1", ref
    row = await conn.fetchrow(
        f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE {where} RETURNING {KEY_COLS}",
        arg,
    )
    return key_record(row) if row else None
