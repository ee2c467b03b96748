"""/admin: tenants, their keys and budgets, behind the operator's admin token.

Every change that affects authentication (a revoked key, a tenant disabled or its policy
changed) is evicted from this process's auth cache before the response goes out and announced
on the auth channel for every other process, so it holds from the very next request.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
from litestar import Request, Response, delete, get, patch, post, put
from litestar.params import FromPath

from service.api.common import json_body, json_response, runtime
from service.auth import tenants
from service.auth.admin_token import admin_guard
from service.auth.cache import notify_key_changed, notify_tenant_changed
from service.catalog.model import FRONT_ENDS, Catalog
from service.chat.validate_types import as_int
from service.errors import GatewayError, invalid
from service.input_limits import check_storable, echo
from service.metering import budget_records

TENANT_STATUSES = ("active", "disabled")
_TENANT_FIELDS = ("name", "status", "markup", "allowed_models", "denied_front_ends")
MAX_NAME = 200


def database(request: Request) -> asyncpg.Pool:
    pool = runtime(request).pool
    if pool is None:
        raise GatewayError(503, "The database is unavailable; try again shortly.", type="server_error",
                           code="database_unavailable", headers={"retry-after": "5"})
    return pool


def _object(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, code="invalid_json")
    for name in body:
        if name not in allowed:
            raise invalid(f"Unknown field {echo(name)}; expected some of {', '.join(allowed)}.", name,
                          code="unknown_parameter")
    return body


def path_ref(value: str, param: str) -> str:
    """A tenant, key or budget reference from the path: text the database can compare. A reference
    longer than any name or id cannot match; it is answered as missing without a query."""
    return check_storable(value, param)


def decimal_value(value: Any, param: str, *, integer_digits: int, places: int) -> Decimal:
    """A non-negative decimal from a JSON string or number that fits its NUMERIC column exactly."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise invalid(f"`{param}` must be a non-negative decimal (a string such as \"0.25\" or a number).",
                      param)
    shown = echo(value) if isinstance(value, str) else "a number out of range"
    if isinstance(value, str) and len(value) > 100:
        raise invalid(f"`{param}` must be a non-negative decimal, got {shown}.", param)
    try:
        # A JSON number arrives as float: its shortest repr is what the client wrote.
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise invalid(f"`{param}` must be a non-negative decimal, got {shown}.", param) from None
    if not number.is_finite() or number < 0:
        raise invalid(f"`{param}` must be a non-negative decimal, got {shown}.", param)
    if number >= Decimal(10) ** integer_digits:
        raise invalid(f"`{param}` must be less than {10 ** integer_digits}.", param)
    try:
        exact = number == number.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        exact = False
    if not exact:
        raise invalid(f"`{param}` takes at most {places} decimal places.", param)
    return number


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME or value != value.strip():
        raise invalid(f"`name` must be a non-empty string of at most {MAX_NAME} characters, without"
                      " surrounding spaces.", "name")
    return check_storable(value, "name")


def _string_list(value: Any, param: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"`{param}` must be a list of strings.", param)
    return list(dict.fromkeys(value))


def _listed(values: list[str]) -> str:
    shown = ", ".join(echo(v) for v in values[:5])
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def _models(value: Any, catalog: Catalog) -> list[str] | None:
    if value is None:
        return None
    models = _string_list(value, "allowed_models")
    unknown = [m for m in models if m not in catalog.models and m not in catalog.pools]
    if unknown:
        raise invalid(f"Unknown model or pool in `allowed_models`: {_listed(unknown)}.", "allowed_models",
                      code="model_not_found")
    return models


def _front_ends(value: Any) -> list[str]:
    front_ends = _string_list(value, "denied_front_ends")
    unknown = [f for f in front_ends if f not in FRONT_ENDS]
    if unknown:
        raise invalid(f"Unknown front end in `denied_front_ends`: {_listed(unknown)}; expected some of"
                      f" {', '.join(FRONT_ENDS)}.", "denied_front_ends")
    return front_ends


def tenant_changes(body: Any, catalog: Catalog) -> dict[str, Any]:
    """Validated column values for a tenant update (the admin API's PATCH and the CLI share this)."""
    body = _object(body, _TENANT_FIELDS)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _name(body["name"])
    if "status" in body:
        if body["status"] not in TENANT_STATUSES:
            raise invalid(f"`status` must be one of {', '.join(TENANT_STATUSES)}.", "status")
        changes["status"] = body["status"]
    if "markup" in body:
        changes["markup"] = decimal_value(body["markup"], "markup", integer_digits=6, places=6)
    if "allowed_models" in body:
        changes["allowed_models"] = _models(body["allowed_models"], catalog)
    if "denied_front_ends" in body:
        changes["denied_front_ends"] = _front_ends(body["denied_front_ends"])
    return changes


async def announce_tenant_change(conn, tenant_id: uuid.UUID, cache=None) -> None:
    """Evict the tenant's keys everywhere, including keys cached as refused while it was disabled."""
    prefixes = [k.prefix for k in await tenants.list_keys(conn, tenant_id) if k.revoked_at is None]
    await notify_tenant_changed(conn, tenant_id)
    for prefix in prefixes:
        await notify_key_changed(conn, prefix)
    if cache is not None:
        cache.evict(f"tenant:{tenant_id}")
        for prefix in prefixes:
            cache.evict(f"key:{prefix}")


async def update_tenant(conn, tenant: tenants.TenantRecord, changes: dict[str, Any], cache=None):
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


async def _tenant(db, ref: str) -> tenants.TenantRecord:
    path_ref(ref, "tenant")
    if len(ref) > MAX_NAME:
        raise _no_tenant(ref)
    record = await tenants.get_tenant(db, ref)
    if record is None:
        raise _no_tenant(ref)
    return record


def _optional_limit(body: dict[str, Any], param: str) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    number = as_int(value)  # 5.0 is the integer 5, as JSON Schema reads it
    if number is None or not 0 < number < 2**31:
        raise invalid(f"`{param}` must be a positive integer or null.", param)
    return number


@post("/admin/tenants", guards=[admin_guard], status_code=201)
async def create_tenant(request: Request) -> Response:
    rt = runtime(request)
    body = _object(await json_body(request), ("name", "markup", "allowed_models", "denied_front_ends"))
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
async def list_tenants(request: Request) -> Response:
    records = await tenants.list_tenants(database(request))
    return json_response({"object": "list", "data": [t.as_json() for t in records]})


@get("/admin/tenants/{tenant:str}", guards=[admin_guard])
async def get_tenant(request: Request, tenant: FromPath[str]) -> Response:
    return json_response((await _tenant(database(request), tenant)).as_json())


@patch("/admin/tenants/{tenant:str}", guards=[admin_guard])
async def patch_tenant(request: Request, tenant: FromPath[str]) -> Response:
    rt = runtime(request)
    changes = tenant_changes(await json_body(request), rt.catalog)
    async with database(request).acquire() as conn:
        record = await update_tenant(conn, await _tenant(conn, tenant), changes, rt.auth)
    return json_response(record.as_json())


@post("/admin/tenants/{tenant:str}/keys", guards=[admin_guard], status_code=201)
async def create_key(request: Request, tenant: FromPath[str]) -> Response:
    body = _object(await json_body(request, empty={}), ("name", "rpm_limit", "tpm_limit"))
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise invalid(f"`name` must be a string of at most {MAX_NAME} characters.", "name")
    if name is not None:
        check_storable(name, "name")
    rpm, tpm = _optional_limit(body, "rpm_limit"), _optional_limit(body, "tpm_limit")
    db = database(request)
    record = await _tenant(db, tenant)
    key, key_record = await tenants.create_key(db, record.id, name=name, rpm_limit=rpm, tpm_limit=tpm)
    # The only time the plaintext exists outside the client: it is stored as a hash.
    return json_response({"key": key, **key_record.as_json()}, status=201)


@get("/admin/tenants/{tenant:str}/keys", guards=[admin_guard])
async def list_keys(request: Request, tenant: FromPath[str]) -> Response:
    db = database(request)
    record = await _tenant(db, tenant)
    keys = await tenants.list_keys(db, record.id)
    return json_response({"object": "list", "data": [k.as_json() for k in keys]})


@delete("/admin/keys/{key:str}", guards=[admin_guard], status_code=200)
async def revoke_key(request: Request, key: FromPath[str]) -> Response:
    rt = runtime(request)
    path_ref(key, "key")
    missing = GatewayError(404, f"No key {echo(key)} (give its id or prefix).", type="not_found_error",
                           code="key_not_found")
    if len(key) > MAX_NAME:
        raise missing
    async with database(request).acquire() as conn:
        record = await tenants.revoke_key(conn, key)
        if record is None:
            raise missing
        await notify_key_changed(conn, record.prefix)
    rt.auth.evict(f"key:{record.prefix}")
    return json_response(record.as_json())


async def budget_changed(conn, tenant_id: uuid.UUID, cache=None) -> None:
    # Whatever a process caches with a tenant's principal is refreshed on its next request.
    await notify_tenant_changed(conn, tenant_id)
    if cache is not None:
        cache.evict(f"tenant:{tenant_id}")


def _budget_body(body: Any) -> dict[str, Any]:
    body = _object(body, ("period", "limit_usd", "hard", "key_id"))
    if body.get("period") not in budget_records.PERIODS:
        raise invalid(f"`period` must be one of {', '.join(budget_records.PERIODS)}.", "period")
    if "limit_usd" not in body:
        raise invalid("`limit_usd` is required.", "limit_usd", code="missing_required_parameter")
    hard = body.get("hard", True)
    if not isinstance(hard, bool):
        raise invalid("`hard` must be true or false.", "hard")
    key_ref = body.get("key_id")
    if key_ref is not None and (not isinstance(key_ref, str) or not key_ref or len(key_ref) > MAX_NAME):
        raise invalid("`key_id` must be a key id or prefix, or null for the whole tenant.", "key_id")
    if key_ref is not None:
        check_storable(key_ref, "key_id")
    return {
        "period": body["period"],
        "limit_usd": decimal_value(body["limit_usd"], "limit_usd", integer_digits=10, places=10),
        "hard": hard,
        "key_ref": key_ref,
    }


@put("/admin/tenants/{tenant:str}/budgets", guards=[admin_guard])
async def put_budget(request: Request, tenant: FromPath[str]) -> Response:
    fields = _budget_body(await json_body(request))
    async with database(request).acquire() as conn:
        record = await _tenant(conn, tenant)
        key_id = None
        if fields["key_ref"] is not None:
            key_id = await budget_records.resolve_key(conn, record.id, fields["key_ref"])
            if key_id is None:
                raise invalid(f"Tenant {echo(record.name)} has no key {echo(fields['key_ref'])}.", "key_id",
                              code="key_not_found")
        budget, created = await budget_records.upsert_budget(
            conn, record.id, period=fields["period"], limit_usd=fields["limit_usd"], hard=fields["hard"],
            key_id=key_id)
        await budget_changed(conn, record.id, runtime(request).auth)
    return json_response(budget.as_json(), status=201 if created else 200)


@get("/admin/tenants/{tenant:str}/budgets", guards=[admin_guard])
async def list_budgets(request: Request, tenant: FromPath[str]) -> Response:
    db = database(request)
    record = await _tenant(db, tenant)
    budgets = await budget_records.list_budgets(db, record.id)
    return json_response({"object": "list", "data": [b.as_json() for b in budgets]})


@delete("/admin/budgets/{budget:str}", guards=[admin_guard], status_code=200)
async def delete_budget(request: Request, budget: FromPath[str]) -> Response:
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
    create_tenant, list_tenants, get_tenant, patch_tenant, create_key, list_keys, revoke_key,
    put_budget, list_budgets, delete_budget,
]
