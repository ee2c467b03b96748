"""/admin projects: create, list, show, change (name, model allow-list), delete when unused.

A change to a project's allow-list is announced on the auth channel (`project:<id>`), which evicts
every cached key of the project on every process. A project's budgets are set through the
tenant's budgets with `project_id`, and listed here too.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from litestar import Response, delete, get, patch, post
from litestar.params import FromPath

from service.api.admin import budget_changed, tenant_or_404
from service.api.admin_input import database, json_object, models_list, name_value
from service.api.common import ApiRequest, json_body, json_response, runtime
from service.auth import projects
from service.auth.admin_token import admin_guard
from service.auth.cache import AuthCache, notify_project_changed
from service.catalog.model import Catalog
from service.db.pool import Db
from service.errors import GatewayError, invalid
from service.input_limits import echo
from service.metering import budget_records

PROJECT_FIELDS = ("name", "allowed_models")


def project_changes(body: Any, catalog: Catalog) -> dict[str, Any]:
    body = json_object(body, PROJECT_FIELDS)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = name_value(body["name"])
    if "allowed_models" in body:
        changes["allowed_models"] = models_list(body["allowed_models"], catalog)
    return changes


def name_taken(name: str) -> GatewayError:
    return GatewayError(409, f"This tenant already has a project named {echo(name)}.", code="project_exists",
                        param="name")


def _no_project(ref: str) -> GatewayError:
    return GatewayError(404, f"No project {echo(ref)} (give its id).", type="not_found_error",
                        code="project_not_found")


async def project_or_404(conn: Db, ref: str) -> projects.ProjectRecord:
    try:
        project_id = uuid.UUID(ref)
    except ValueError:
        raise _no_project(ref) from None
    record = await projects.get_project(conn, project_id)
    if record is None:
        raise _no_project(ref)
    return record


async def project_changed(conn: Db, project_id: uuid.UUID, cache: AuthCache | None = None) -> None:
    await notify_project_changed(conn, project_id)
    if cache is not None:
        cache.evict(f"project:{project_id}")


@post("/admin/tenants/{tenant:str}/projects", guards=[admin_guard], status_code=201)
async def create_project(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    changes = project_changes(await json_body(request), runtime(request).catalog)
    if "name" not in changes:
        raise invalid("`name` is required.", "name", code="missing_required_parameter")
    async with database(request).acquire() as conn:
        record = await tenant_or_404(conn, tenant)
        try:
            project = await projects.create_project(conn, record.id, changes["name"],
                                                    allowed_models=changes.get("allowed_models"))
        except asyncpg.UniqueViolationError:
            raise name_taken(changes["name"]) from None
    return json_response(project.as_json(), status=201)


@get("/admin/tenants/{tenant:str}/projects", guards=[admin_guard])
async def list_projects(request: ApiRequest, tenant: FromPath[str]) -> Response[bytes]:
    db = database(request)
    record = await tenant_or_404(db, tenant)
    return json_response({"object": "list", "data": [p.as_json() for p in await projects.list_projects(db, record.id)]})


@get("/admin/projects/{project:str}", guards=[admin_guard])
async def get_project(request: ApiRequest, project: FromPath[str]) -> Response[bytes]:
    return json_response((await project_or_404(database(request), project)).as_json())


@patch("/admin/projects/{project:str}", guards=[admin_guard])
async def patch_project(request: ApiRequest, project: FromPath[str]) -> Response[bytes]:
    rt = runtime(request)
    changes = project_changes(await json_body(request), rt.catalog)
    async with database(request).acquire() as conn:
        record = await project_or_404(conn, project)
        try:
            updated = await projects.update_project(conn, record.id, **changes)
        except asyncpg.UniqueViolationError:
            raise name_taken(changes["name"]) from None
        if updated is None:
            raise _no_project(project)
        await project_changed(conn, updated.id, rt.auth)
    return json_response(updated.as_json())


@delete("/admin/projects/{project:str}", guards=[admin_guard], status_code=200)
async def delete_project(request: ApiRequest, project: FromPath[str]) -> Response[bytes]:
    async with database(request).acquire() as conn:
        record = await project_or_404(conn, project)
        try:
            deleted = await projects.delete_project(conn, record.id)
        except projects.ProjectInUse as exc:
            raise GatewayError(409, f"Project {echo(record.name)} is in use: {exc}.", code="project_in_use") from None
        if deleted is None:
            raise _no_project(project)
        # Its budgets went with it: the tenant's keys reload their budget rules.
        await budget_changed(conn, record.tenant_id, runtime(request).auth)
    return json_response({**deleted.as_json(), "deleted": True})


@get("/admin/projects/{project:str}/budgets", guards=[admin_guard])
async def list_project_budgets(request: ApiRequest, project: FromPath[str]) -> Response[bytes]:
    db = database(request)
    record = await project_or_404(db, project)
    budgets = await budget_records.list_budgets(db, record.tenant_id, project_id=record.id)
    return json_response({"object": "list", "data": [b.as_json() for b in budgets]})


PROJECT_HANDLERS = [create_project, list_projects, get_project, patch_project, delete_project, list_project_budgets]
