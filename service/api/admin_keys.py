"""/admin keys: create (the plaintext shown once), list, show, change, rotate, revoke.

A key may name a project of its tenant, a model allow-list (intersected with its project's and
its tenant's), rate limits, an expiry and metadata. Every change is announced on the auth channel
under each prefix the key authenticates with, and evicted here before the response, so it holds
on every process from the next request. Rotation returns the new secret once; the old one keeps
working for the grace period asked (`grace_seconds`, default a day, 0 to end it at once).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Response, delete, get, patch, post
from litestar.params import FromPath

from service.api.admin import tenant_or_404
from service.api.admin_input import (
    MAX_NAME,
    database,
    json_object,
    metadata_pairs,
    models_list,
    optional_instant,
    optional_limit,
    path_ref,
)
from service.api.common import ApiRequest, json_body, json_response, optional_json_body, runtime
from service.auth import key_lifecycle, projects, tenants
from service.auth.admin_token import admin_guard
from service.auth.cache import AuthCache, notify_key_changed
from service.catalog.model import Catalog
from service.chat.validate_types import as_int
from service.db.pool import Db
from service.errors import GatewayError, invalid
from service.input_limits import check_storable, echo

KEY_FIELDS = ("name", "rpm_limit", "tpm_limit", "expires_at", "metadata", "allowed_models", "project_id")
DEFAULT_GRACE = timedelta(days=1)


def key_changes(body: Any, catalog: Catalog) -> dict[str, Any]:
    """Validated key fields (the API's create and PATCH and the CLI share this); `project_id` is
    still a reference (id or name) to resolve within the key's tenant."""
    body = json_object(body, KEY_FIELDS)
    changes: dict[str, Any] = {}
    if "name" in body:
        name = body["name"]
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
            raise invalid(f"`name` must be a string of at most {MAX_NAME} characters, or null.", "name")
        changes["name"] = None if name is None else check_storable(name, "name")
    for param in ("rpm_limit", "tpm_limit"):
        if param in body:
            changes[param] = optional_limit(body[param], param)
    if "expires_at" in body:
        changes["expires_at"] = optional_instant(body["expires_at"], "expires_at")
    if "metadata" in body:
        changes["metadata"] = metadata_pairs(body["metadata"])
    if "allowed_models" in body:
        changes["allowed_models"] = models_list(body["allowed_models"], catalog)
    if "project_id" in body:
        ref = body["project_id"]
        if ref is not None and (not isinstance(ref, str) or not ref or len(ref) > MAX_NAME):
            raise invalid("`project_id` must be a project id or name, or null.", "project_id")
        changes["project_id"] = None if ref is None else check_storable(ref, "project_id")
    return changes


async def resolve_project(conn: Db, changes: dict[str, Any], tenant: tenants.TenantRecord) -> dict[str, Any]:
    """`project_id` as the id of one of the tenant's projects (a 400 naming the field if none)."""
    ref = changes.get("project_id")
    if ref is None:
        return changes
    project = await projects.find_project(conn, ref, tenant.id)
    if project is None:
        raise invalid(f"Tenant {echo(tenant.name)} has no project {echo(ref)}.", "project_id",
                      code="project_not_found")
    return {**changes, "project_id": project.id}


async def announce_key(conn: Db, prefixes: list[str], cache: AuthCache | None = None) -> None:
    for prefix in prefixes:
        await notify_key_changed(conn, prefix)
        if cache is not None:
            cache.evict(f"key:{prefix}")


def _no_key(ref: str) -> GatewayError:
    return GatewayError(404, f"No key {echo(ref)} (give its id or prefix).", type="not_found_error",
                        code="key_not_found")


async def key_or_404(conn: Db, ref: str) -> tenants.KeyRecord:
    path_ref(ref, "key")
    if len(ref) > MAX_NAME:
        raise _no_key(ref)  # longer than any prefix or id: it cannot match
    record = await key_lifecycle.find_key(conn, ref)
    if record is None:
        raise _no_key(ref)
    return record


@post("/admin/tenants/{tenant:str}/keys", guards=[admin_guard], status_code=201)
async def create_key(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    changes = key_changes(await optional_json_body(request), runtime(request).catalog)
    async with database(request).acquire() as conn:
        record = await tenant_or_404(conn, tenant)
        fields = await resolve_project(conn, changes, record)
        key, key_record = await tenants.create_key(conn, record.id, **fields)
    # The only time the plaintext exists outside the client: it is stored as a hash.
    return json_response({"key": key, **key_record.as_json()}, status=201)


@get("/admin/tenants/{tenant:str}/keys", guards=[admin_guard])
async def list_keys(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    db = database(request)
    record = await tenant_or_404(db, tenant)
    keys = await tenants.list_keys(db, record.id)
    return json_response({"object": "list", "data": [k.as_json() for k in keys]})


@get("/admin/keys/{key:str}", guards=[admin_guard])
async def get_key(request: ApiRequest, key: FromPath[str]) -> Response[bytes]:
    return json_response((await key_or_404(database(request), key)).as_json())


@patch("/admin/keys/{key:str}", guards=[admin_guard])
async def patch_key(request: ApiRequest, key: FromPath[str]) -> Response[bytes]:
    rt = runtime(request)
    changes = key_changes(await json_body(request), rt.catalog)
    async with database(request).acquire() as conn:
        record = await key_or_404(conn, key)
        tenant = await tenant_or_404(conn, str(record.tenant_id))
        updated = await key_lifecycle.update_key(conn, record.id, **await resolve_project(conn, changes, tenant))
        if updated is None:
            raise _no_key(key)
        await announce_key(conn, key_lifecycle.prefixes(updated), rt.auth)
    return json_response(updated.as_json())


def grace_period(body: Any) -> timedelta:
    body = json_object(body, ("grace_seconds",))
    # 465.0 is the integer 465, as JSON Schema reads it.
    seconds = as_int(body.get("grace_seconds", int(DEFAULT_GRACE.total_seconds())))
    most = int(key_lifecycle.MAX_GRACE.total_seconds())
    if seconds is None or not 0 <= seconds <= most:
        raise invalid(f"`grace_seconds` must be a whole number of seconds from 0 to {most}.", "grace_seconds")
    return timedelta(seconds=seconds)


@post("/admin/keys/{key:str}/rotate", guards=[admin_guard], status_code=201)
async def rotate_key(request: ApiRequest, key: FromPath[str]) -> Response[bytes]:
    rt = runtime(request)
    grace = grace_period(await optional_json_body(request))
    async with database(request).acquire() as conn:
        record = await key_or_404(conn, key)
        try:
            secret, rotated, announce = await key_lifecycle.rotate_key(conn, record.id, grace)
        except key_lifecycle.KeyRevoked:
            raise GatewayError(409, f"Key {record.prefix} is revoked; create a new key instead.",
                               code="key_revoked") from None
        await announce_key(conn, announce, rt.auth)
    return json_response({"key": secret, **rotated.as_json()}, status=201)


@delete("/admin/keys/{key:str}", guards=[admin_guard], status_code=200)
async def revoke_key(request: ApiRequest, key: FromPath[str]) -> Response[bytes]:
    rt = runtime(request)
    async with database(request).acquire() as conn:
        found = await key_or_404(conn, key)
        record = await tenants.revoke_key(conn, str(found.id))
        if record is None:
            raise _no_key(key)
        await announce_key(conn, key_lifecycle.prefixes(record), rt.auth)
    return json_response(record.as_json())


KEY_HANDLERS = [create_key, list_keys, get_key, patch_key, rotate_key, revoke_key]
