"""/admin: tenants and budgets (at every level), behind the operator's admin token.

Keys live in `admin_keys`, projects in `admin_projects`; `admin_routes` lists every handler.
Every change that affects authentication (a revoked key, a tenant disabled or its policy
changed, a budget set) is evicted from this process's auth cache before the response goes out
and announced on the auth channel for every other process, so it holds from the very next request.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, TypedDict

import asyncpg
from litestar import Response, delete, get, patch, post, put
from litestar.params import FromPath

from service.api.admin_input import (
    MAX_NAME,
    database,
    decimal_value,
    json_object,
    listed,
    models_list,
    name_value,
    path_ref,
    string_list,
)
from service.api.common import ApiRequest, json_body, json_response, runtime
from service.auth import projects, tenants
from service.auth.admin_token import admin_guard
from service.auth.cache import AuthCache, notify_key_changed, notify_tenant_changed
from service.catalog.model import FRONT_ENDS, Catalog
from service.chat.validate_types import as_int
from service.db.pool import Conn, Db
from service.errors import GatewayError, invalid
from service.input_limits import check_storable, echo
from service.metering import budget_records

__all__ = ["ADMIN_HANDLERS", "budget_changed", "database", "decimal_value", "tenant_changes", "update_tenant"]

TENANT_STATUSES = ("active", "disabled")
_TENANT_FIELDS = ("name", "status", "markup", "allowed_models", "denied_front_ends")
_BUDGET_FIELDS = ("period", "limit_usd", "hard", "key_id", "project_id", "window_hours")


def _front_ends(value: Any) -> list[str]:
    front_ends = string_list(value, "denied_front_ends")
    unknown = [f for f in front_ends if f not in FRONT_ENDS]
    if unknown:
        raise invalid(f"Unknown front end in `denied_front_ends`: {listed(unknown)}; expected some of"
                      f" {', '.join(FRONT_ENDS)}.", "denied_front_ends")
    return front_ends


def tenant_changes(body: Any, catalog: Catalog) -> dict[str, Any]:
    """Validated column values for a tenant update (the admin API's PATCH and the CLI share this)."""
    body = json_object(body, _TENANT_FIELDS)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = name_value(body["name"])
    if "status" in body:
        if body["status"] not in TENANT_STATUSES:
            raise invalid(f"`status` must be one of {', '.join(TENANT_STATUSES)}.", "status")
        changes["status"] = body["status"]
    if "markup" in body:
        changes["markup"] = decimal_value(body["markup"], "markup", integer_digits=6, places=6)
    if "allowed_models" in body:
        changes["allowed_models"] = models_list(body["allowed_models"], catalog)
    if "denied_front_ends" in body:
        changes["denied_front_ends"] = _front_ends(body["denied_front_ends"])
    return changes


async def announce_tenant_change(conn: Conn, tenant_id: uuid.UUID, cache: AuthCache | None = None) -> None:
    """Evict the tenant's keys everywhere, including keys cached as refused while it was disabled."""
    prefixes = [p for k in await tenants.list_keys(conn, tenant_id) if k.revoked_at is None
                for p in (k.prefix, k.previous_prefix) if p]
    await notify_tenant_changed(conn, tenant_id)
    for prefix in prefixes:
        await notify_key_changed(conn, prefix)
    if cache is not None:
        cache.evict(f"tenant:{tenant_id}")
        for prefix in prefixes:
            cache.evict(f"key:{prefix}")


async def update_tenant(conn: Conn, tenant: tenants.TenantRecord, changes: dict[str, Any],
                        cache: AuthCache | None = None) -> tenants.TenantRecord:
    try:
        updated = await tenants.update_tenant(conn, tenant.id, **changes)
    except asyncpg.UniqueViolationError:
        raise _name_taken(changes["name"]) from None
    if updated is None:
        raise _no_tenant(str(tenant.id))
    await announce_tenant_change(conn, updated.id, cache)
    return updated


def _name_taken(name: str) -> GatewayError:
    return GatewayError(409, f"A tenant named {echo(name)} already exists.", code="tenant_exists", param="name")


def _no_tenant(ref: str) -> GatewayError:
    return GatewayError(404, f"No tenant {echo(ref)}.", type="not_found_error", code="tenant_not_found")


async def tenant_or_404(db: Db, ref: str) -> tenants.TenantRecord:
    path_ref(ref, "tenant")
    if len(ref) > MAX_NAME:
        raise _no_tenant(ref)  # longer than any name or id: it cannot match, no query needed
    record = await tenants.get_tenant(db, ref)
    if record is None:
        raise _no_tenant(ref)
    return record


@post("/admin/tenants", guards=[admin_guard], status_code=201)
async def create_tenant(request: ApiRequest) -> Response[bytes]:
    rt = runtime(request)
    body = json_object(await json_body(request), ("name", "markup", "allowed_models", "denied_front_ends"))
    if "name" not in body:
        raise invalid("`name` is required.", "name", code="missing_required_parameter")
    fields = tenant_changes(body, rt.catalog)
    try:
        record = await tenants.create_tenant(
            database(request), fields["name"], markup=fields.get("markup", Decimal(0)),
            allowed_models=fields.get("allowed_models"), denied_front_ends=fields.get("denied_front_ends"))
    except asyncpg.UniqueViolationError:
        raise _name_taken(fields["name"]) from None
    return json_response(record.as_json(), status=201)


@get("/admin/tenants", guards=[admin_guard])
async def list_tenants(request: ApiRequest) -> Response[bytes]:
    records = await tenants.list_tenants(database(request))
    return json_response({"object": "list", "data": [t.as_json() for t in records]})


@get("/admin/tenants/{tenant:str}", guards=[admin_guard])
async def get_tenant(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    return json_response((await tenant_or_404(database(request), tenant)).as_json())


@patch("/admin/tenants/{tenant:str}", guards=[admin_guard])
async def patch_tenant(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    rt = runtime(request)
    changes = tenant_changes(await json_body(request), rt.catalog)
    async with database(request).acquire() as conn:
        record = await update_tenant(conn, await tenant_or_404(conn, tenant), changes, rt.auth)
    return json_response(record.as_json())


# ---- budgets ------------------------------------------------------------------------------------

async def budget_changed(conn: Conn, tenant_id: uuid.UUID, cache: AuthCache | None = None) -> None:
    # Budgets are loaded with the key: every key of the tenant reloads on its next request.
    await notify_tenant_changed(conn, tenant_id)
    if cache is not None:
        cache.evict(f"tenant:{tenant_id}")


class BudgetFields(TypedDict):
    period: str
    limit_usd: Decimal
    hard: bool
    window_hours: int | None
    key_ref: str | None  # a key id or prefix, resolved within the tenant by budget_level
    project_ref: str | None  # a project id or name, likewise


class BudgetLevel(TypedDict):
    key_id: uuid.UUID | None
    project_id: uuid.UUID | None


def budget_fields(body: Any) -> BudgetFields:
    """A budget's validated fields; `key_ref` and `project_ref` still to be resolved in the tenant."""
    body = json_object(body, _BUDGET_FIELDS)
    if body.get("period") not in budget_records.PERIODS:
        raise invalid(f"`period` must be one of {', '.join(budget_records.PERIODS)}.", "period")
    if "limit_usd" not in body:
        raise invalid("`limit_usd` is required.", "limit_usd", code="missing_required_parameter")
    hard = body.get("hard", True)
    if not isinstance(hard, bool):
        raise invalid("`hard` must be true or false.", "hard")
    refs: dict[str, str | None] = {}
    for param, what in (("key_id", "a key id or prefix"), ("project_id", "a project id or name")):
        ref = body.get(param)
        if ref is not None and (not isinstance(ref, str) or not ref or len(ref) > MAX_NAME):
            raise invalid(f"`{param}` must be {what}, or null.", param)
        if ref is not None:
            check_storable(ref, param)
        refs[param] = ref
    if refs["key_id"] is not None and refs["project_id"] is not None:
        raise invalid("A budget binds one level: give `key_id` or `project_id`, not both.", "project_id")
    window = body.get("window_hours")
    limit = budget_records.MAX_WINDOW_HOURS
    if body["period"] == "rolling":
        window = as_int(window)
        if window is None or not 1 <= window <= limit:
            raise invalid(f"A rolling budget needs `window_hours`, a whole number of hours from 1 to {limit}.",
                          "window_hours")
    elif window is not None:
        raise invalid("`window_hours` belongs to rolling budgets only.", "window_hours")
    return {
        "period": body["period"],
        "limit_usd": decimal_value(body["limit_usd"], "limit_usd", integer_digits=10, places=10),
        "hard": hard,
        "window_hours": window,
        "key_ref": refs["key_id"],
        "project_ref": refs["project_id"],
    }


async def budget_level(conn: Db, tenant: tenants.TenantRecord, fields: BudgetFields) -> BudgetLevel:
    """The key or project a budget binds, found within the tenant (a 400 naming the field if not)."""
    key_id = project_id = None
    if fields["key_ref"] is not None:
        key_id = await budget_records.resolve_key(conn, tenant.id, fields["key_ref"])
        if key_id is None:
            raise invalid(f"Tenant {echo(tenant.name)} has no key {echo(fields['key_ref'])}.", "key_id",
                          code="key_not_found")
    if fields["project_ref"] is not None:
        project = await projects.find_project(conn, fields["project_ref"], tenant.id)
        if project is None:
            raise invalid(f"Tenant {echo(tenant.name)} has no project {echo(fields['project_ref'])}.", "project_id",
                          code="project_not_found")
        project_id = project.id
    return {"key_id": key_id, "project_id": project_id}


@put("/admin/tenants/{tenant:str}/budgets", guards=[admin_guard])
async def put_budget(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    fields = budget_fields(await json_body(request))
    async with database(request).acquire() as conn:
        record = await tenant_or_404(conn, tenant)
        level = await budget_level(conn, record, fields)
        budget, created = await budget_records.upsert_budget(
            conn, record.id, period=fields["period"], limit_usd=fields["limit_usd"], hard=fields["hard"],
            window_hours=fields["window_hours"], key_id=level["key_id"], project_id=level["project_id"])
        await budget_changed(conn, record.id, runtime(request).auth)
    return json_response(budget.as_json(), status=201 if created else 200)


@get("/admin/tenants/{tenant:str}/budgets", guards=[admin_guard])
async def list_budgets(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    db = database(request)
    record = await tenant_or_404(db, tenant)
    budgets = await budget_records.list_budgets(db, record.id)
    return json_response({"object": "list", "data": [b.as_json() for b in budgets]})


@delete("/admin/budgets/{budget:str}", guards=[admin_guard], status_code=200)
async def delete_budget(request: ApiRequest, budget: FromPath[str]) -> Response[bytes]:
    try:
        budget_id = uuid.UUID(budget)
    except ValueError:
        raise invalid(f"A budget id is a UUID, got {echo(budget)}.", "budget_id") from None
    async with database(request).acquire() as conn:
        record = await budget_records.delete_budget(conn, budget_id)
        if record is None:
            raise GatewayError(404, f"No budget {budget}.", type="not_found_error", code="budget_not_found")
        await budget_changed(conn, record.tenant_id, runtime(request).auth)
    return json_response({**record.as_json(), "deleted": True})


ADMIN_HANDLERS = [
    create_tenant, list_tenants, get_tenant, patch_tenant, put_budget, list_budgets, delete_budget,
]
