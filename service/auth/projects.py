"""Projects: the level between a tenant and its keys (create, read, update, delete when unused).

A project groups keys for attribution and carries a model allow-list (intersected with the
tenant's and the key's) and budgets of its own. Deleting one is refused while any key, revoked or
not, belongs to it, or while the rollups hold usage attributed to it: billing history keeps the
names it was billed under.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from service.db.pool import Conn, Db


class ProjectInUse(Exception):
    """A project that keys belong to, or that usage was attributed to, cannot be deleted."""


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    allowed_models: tuple[str, ...] | None
    created_at: datetime
    updated_at: datetime
    active_keys: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "name": self.name,
            "allowed_models": list(self.allowed_models) if self.allowed_models is not None else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "active_keys": self.active_keys,
        }


_SELECT = """
SELECT p.id, p.tenant_id, p.name, p.allowed_models, p.created_at, p.updated_at,
       (SELECT count(*) FROM api_keys k WHERE k.project_id = p.id AND k.revoked_at IS NULL) AS active_keys
FROM projects p
"""


def _record(row: asyncpg.Record) -> ProjectRecord:
    allowed = row["allowed_models"]
    return ProjectRecord(id=row["id"], tenant_id=row["tenant_id"], name=row["name"],
                         allowed_models=tuple(allowed) if allowed is not None else None,
                         created_at=row["created_at"], updated_at=row["updated_at"], active_keys=row["active_keys"])


async def create_project(conn: Db, tenant_id: uuid.UUID, name: str, *,
                         allowed_models: list[str] | None = None) -> ProjectRecord:
    """Raises asyncpg.UniqueViolationError when the tenant already has a project of that name."""
    project_id = await conn.fetchval(
        "INSERT INTO projects (id, tenant_id, name, allowed_models) VALUES ($1, $2, $3, $4) RETURNING id",
        uuid.uuid4(), tenant_id, name, allowed_models)
    record = await get_project(conn, project_id)
    if record is None:
        raise RuntimeError(f"project {project_id} vanished right after it was created")
    return record


async def get_project(conn: Db, project_id: uuid.UUID) -> ProjectRecord | None:
    row = await conn.fetchrow(_SELECT + " WHERE p.id = $1", project_id)
    return _record(row) if row else None


async def find_project(conn: Db, ref: str, tenant_id: uuid.UUID | None) -> ProjectRecord | None:
    """A project by id, or by name within a tenant; with a tenant, only that tenant's projects."""
    try:
        project_id = uuid.UUID(ref)
    except ValueError:
        if tenant_id is None:
            return None
        row = await conn.fetchrow(_SELECT + " WHERE p.tenant_id = $1 AND p.name = $2", tenant_id, ref)
        return _record(row) if row else None
    record = await get_project(conn, project_id)
    if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
        return None
    return record


async def list_projects(conn: Db, tenant_id: uuid.UUID) -> list[ProjectRecord]:
    rows = await conn.fetch(_SELECT + ' WHERE p.tenant_id = $1 ORDER BY p.name COLLATE "C"', tenant_id)
    return [_record(r) for r in rows]


async def update_project(conn: Db, project_id: uuid.UUID, **changes: Any) -> ProjectRecord | None:
    """Set `name` and/or `allowed_models`; raises asyncpg.UniqueViolationError on a taken name."""
    allowed = {"name", "allowed_models"}
    sets: list[str] = []
    args: list[Any] = [project_id]
    for column, value in changes.items():
        if column not in allowed:
            raise ValueError(f"unknown project field {column}")
        args.append(value)
        sets.append(f"{column} = ${len(args)}")
    if sets:
        updated = await conn.fetchval(
            f"UPDATE projects SET {', '.join(sets)}, updated_at = now() WHERE id = $1 RETURNING id", *args)
        if updated is None:
            return None
    return await get_project(conn, project_id)


async def delete_project(conn: Conn, project_id: uuid.UUID) -> ProjectRecord | None:
    """Delete an unused project (its budgets go with it); None when there is no such project."""
    async with conn.transaction():
        record = await get_project(conn, project_id)
        if record is None:
            return None
        # Locks the project against a key being moved into it meanwhile.
        await conn.execute("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", project_id)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM api_keys WHERE project_id = $1)", project_id):
            raise ProjectInUse("keys belong to it (revoked keys too); move them to another project first")
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM usage_daily WHERE tenant_id = $1 AND project_id = $2)",
                               record.tenant_id, project_id):
            raise ProjectInUse("usage was attributed to it, and billing history keeps its name")
        budgets = [r["id"] for r in await conn.fetch("SELECT id FROM budgets WHERE project_id = $1", project_id)]
        await conn.execute("DELETE FROM projects WHERE id = $1", project_id)
        scopes = [f"budget:{b}" for b in budgets]
        await conn.execute("DELETE FROM quota_leases WHERE scope = ANY($1)", scopes)
        await conn.execute("DELETE FROM quota_counters WHERE scope = ANY($1)", scopes)
    return record
