"""`switchyard projects ...` and the key lifecycle (`keys create|list|show|update|rotate|revoke`).

The same validation and records as the admin API, and the same announcements on the auth channel,
so a change made here holds on every running gateway from its next request. In options that take
a value, `none` clears it (`--allowed-models all` allows every model).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from service.errors import GatewayError

if TYPE_CHECKING:
    import asyncpg

    from service.auth.tenants import KeyRecord
    from service.catalog.model import Catalog

Guard = Callable[[Callable[[argparse.Namespace], None], argparse.Namespace], None]


def _run(fn: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
    from service.cli_admin import _run as run

    run(fn)


def _catalog() -> Catalog:
    from service.catalog.loader import load_catalog
    from service.cli import _settings

    settings = _settings()
    return load_catalog(settings.catalog_path, settings.catalog_overrides_path)


def _cleared(value: str | None) -> str | None:
    return None if value is not None and value.lower() == "none" else value


def _int_or_none(value: str, option: str) -> int | None:
    if value.lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise GatewayError(400, f"{option} takes a whole number or `none`, got {value!r}") from None


def _metadata(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise GatewayError(400, f"--metadata takes KEY=VALUE, got {pair!r}")
        out[name] = value
    return out


def _key_body(args: argparse.Namespace) -> dict[str, Any]:
    """The admin API's key fields from the options given."""
    body: dict[str, Any] = {}
    if getattr(args, "name", None) is not None:
        body["name"] = _cleared(args.name)
    for option, field in (("rpm", "rpm_limit"), ("tpm", "tpm_limit")):
        value = getattr(args, option, None)
        if value is not None:
            body[field] = _int_or_none(str(value), f"--{option}")
    if args.expires_at is not None:
        body["expires_at"] = _cleared(args.expires_at)
    if args.project is not None:
        body["project_id"] = _cleared(args.project)
    if args.allowed_models is not None:
        models = args.allowed_models
        body["allowed_models"] = None if models == "all" else [m.strip() for m in models.split(",") if m.strip()]
    if getattr(args, "clear_metadata", False):
        body["metadata"] = None
    elif args.metadata:
        body["metadata"] = _metadata(args.metadata)
    return body


def _describe(k: KeyRecord) -> str:
    if k.revoked_at is not None:
        state = "revoked"
    elif k.expires_at is not None:
        state = f"expires {k.expires_at:%Y-%m-%dT%H:%M:%SZ}"
    else:
        state = "active"
    extra = (f"  previous {k.previous_prefix}… until {k.previous_expires_at:%Y-%m-%dT%H:%M:%SZ}"
             if k.previous_prefix else "")
    project = f"project {k.project_id}" if k.project_id else "no project"
    return f"{k.prefix}…  {k.name or '-'}  {project}  created {k.created_at:%Y-%m-%d}  {state}{extra}"


def cmd_key_create(args: argparse.Namespace) -> None:
    from service.api.admin_keys import key_changes, resolve_project
    from service.auth import tenants

    changes = key_changes(_key_body(args), _catalog())

    async def run(conn: asyncpg.Connection) -> None:
        tenant = await tenants.get_tenant(conn, args.tenant)
        if tenant is None:
            raise GatewayError(404, f"no tenant {args.tenant!r}")
        key, record = await tenants.create_key(conn, tenant.id, **await resolve_project(conn, changes, tenant))
        print(key)
        print(f"(key {record.prefix}… for tenant {tenant.name}; shown once, store it now)", file=sys.stderr)

    _run(run)


def cmd_key_list(args: argparse.Namespace) -> None:
    from service.auth import tenants

    async def run(conn: asyncpg.Connection) -> None:
        tenant = await tenants.get_tenant(conn, args.tenant)
        if tenant is None:
            raise GatewayError(404, f"no tenant {args.tenant!r}")
        for k in await tenants.list_keys(conn, tenant.id):
            print(_describe(k))

    _run(run)


def cmd_key_show(args: argparse.Namespace) -> None:
    import orjson

    from service.api.admin_keys import key_or_404

    async def run(conn: asyncpg.Connection) -> None:
        record = await key_or_404(conn, args.key)
        print(orjson.dumps(record.as_json(), option=orjson.OPT_INDENT_2).decode())

    _run(run)


def cmd_key_update(args: argparse.Namespace) -> None:
    from service.api.admin import tenant_or_404
    from service.api.admin_keys import announce_key, key_changes, key_or_404, resolve_project
    from service.auth import key_lifecycle

    body = _key_body(args)
    if not body:
        raise GatewayError(400, "nothing to change: give at least one of --name --rpm --tpm --expires-at --project"
                                " --allowed-models --metadata --clear-metadata")
    changes = key_changes(body, _catalog())

    async def run(conn: asyncpg.Connection) -> None:
        record = await key_or_404(conn, args.key)
        tenant = await tenant_or_404(conn, str(record.tenant_id))
        updated = await key_lifecycle.update_key(conn, record.id, **await resolve_project(conn, changes, tenant))
        if updated is None:
            raise GatewayError(404, f"key {args.key!r} was deleted meanwhile")
        await announce_key(conn, key_lifecycle.prefixes(updated))
        print(f"updated {_describe(updated)}")

    _run(run)


def cmd_key_rotate(args: argparse.Namespace) -> None:
    from service.api.admin_keys import announce_key, grace_period, key_or_404
    from service.auth import key_lifecycle

    grace = grace_period({"grace_seconds": args.grace_seconds})

    async def run(conn: asyncpg.Connection) -> None:
        record = await key_or_404(conn, args.key)
        try:
            secret, rotated, announce = await key_lifecycle.rotate_key(conn, record.id, grace)
        except key_lifecycle.KeyRevoked:
            raise GatewayError(409, f"key {record.prefix} is revoked; create a new key instead") from None
        await announce_key(conn, announce)
        print(secret)
        until = f" until {rotated.previous_expires_at:%Y-%m-%dT%H:%M:%SZ}" if rotated.previous_prefix else " no longer"
        print(f"(new secret {rotated.prefix}… shown once; the old one {record.prefix}… works{until})", file=sys.stderr)

    _run(run)


def cmd_key_revoke(args: argparse.Namespace) -> None:
    from service.api.admin_keys import announce_key, key_or_404
    from service.auth import key_lifecycle, tenants

    async def run(conn: asyncpg.Connection) -> None:
        found = await key_or_404(conn, args.key)
        record = await tenants.revoke_key(conn, str(found.id))
        if record is None:
            raise GatewayError(404, f"key {args.key!r} was deleted meanwhile")
        await announce_key(conn, key_lifecycle.prefixes(record))
        print(f"revoked {record.prefix}…")

    _run(run)


def cmd_projects(args: argparse.Namespace) -> None:
    import asyncpg

    from service.api.admin import budget_changed, tenant_or_404
    from service.api.admin_projects import project_changed, project_changes
    from service.auth import projects

    body: dict[str, Any] = {}
    if getattr(args, "name", None) is not None and args.action != "create":
        body["name"] = args.name
    if getattr(args, "allowed_models", None) is not None:
        models = args.allowed_models
        body["allowed_models"] = None if models == "all" else [m.strip() for m in models.split(",") if m.strip()]

    async def run(conn: asyncpg.Connection) -> None:
        tenant = await tenant_or_404(conn, args.tenant)
        if args.action == "list":
            for p in await projects.list_projects(conn, tenant.id):
                allowed = ",".join(p.allowed_models) if p.allowed_models is not None else "all"
                print(f"{p.id}  {p.name}  allowed_models={allowed}  active_keys={p.active_keys}")
            return
        if args.action == "create":
            fields = project_changes({**body, "name": args.name}, _catalog())
            try:
                p = await projects.create_project(conn, tenant.id, fields["name"],
                                                  allowed_models=fields.get("allowed_models"))
            except asyncpg.UniqueViolationError:
                raise GatewayError(409, f"tenant {tenant.name} already has a project {args.name!r}") from None
            print(f"created project {p.name} ({p.id})")
            return
        project = await projects.find_project(conn, args.project, tenant.id)
        if project is None:
            raise GatewayError(404, f"tenant {tenant.name} has no project {args.project!r}")
        if args.action == "update":
            if not body:
                raise GatewayError(400, "nothing to change: give --name or --allowed-models")
            try:
                updated = await projects.update_project(conn, project.id, **project_changes(body, _catalog()))
            except asyncpg.UniqueViolationError:
                raise GatewayError(409, f"tenant {tenant.name} already has a project {args.name!r}") from None
            if updated is None:
                raise GatewayError(404, f"project {args.project!r} was deleted meanwhile")
            await project_changed(conn, project.id)
            print(f"updated project {updated.name} ({updated.id})")
        else:
            try:
                await projects.delete_project(conn, project.id)
            except projects.ProjectInUse as exc:
                raise GatewayError(409, f"project {project.name} is in use: {exc}") from None
            await budget_changed(conn, tenant.id)
            print(f"deleted project {project.name} ({project.id})")

    _run(run)


def _key_options(p: argparse.ArgumentParser, *, update: bool) -> None:
    if update:
        p.add_argument("--name", default=None, help="a new label for the key")
        p.add_argument("--rpm", default=None, help="requests a minute, or none")
        p.add_argument("--tpm", default=None, help="tokens a minute, or none")
        p.add_argument("--clear-metadata", action="store_true", help="remove every metadata pair first")
    p.add_argument("--project", default=None, help="project id or name" + (", or none" if update else ""))
    p.add_argument("--expires-at", default=None, help="ISO 8601 date-time the key stops working"
                   + (", or none" if update else ""))
    p.add_argument("--allowed-models", default=None, help="comma-separated models or pools, or `all`")
    p.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                   help="a metadata pair to set (repeat for several)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], guarded: Guard) -> None:
    """Projects, and the key commands beyond `cli`'s create/list/revoke (which these extend)."""
    from service.cli_admin import _subparsers

    keys = _subparsers(sub.choices["keys"])
    create = keys.choices["create"]
    _key_options(create, update=False)
    # A sub-command's defaults override its parent's, so these win over `keys`' own handler.
    create.set_defaults(fn=lambda args: guarded(cmd_key_create, args))
    keys.choices["list"].set_defaults(fn=lambda args: guarded(cmd_key_list, args))
    keys.choices["revoke"].set_defaults(fn=lambda args: guarded(cmd_key_revoke, args))
    c = keys.add_parser("show", help="one key's settings (never its secret)")
    c.add_argument("key", help="key id or prefix")
    c.set_defaults(fn=lambda args: guarded(cmd_key_show, args))
    c = keys.add_parser("update", help="rename a key, or change its limits, expiry, project, models, metadata")
    c.add_argument("key", help="key id or prefix")
    _key_options(c, update=True)
    c.set_defaults(fn=lambda args: guarded(cmd_key_update, args))
    c = keys.add_parser("rotate", help="a new secret for a key; the old one works for the grace period")
    c.add_argument("key", help="key id or prefix")
    c.add_argument("--grace-seconds", type=int, default=86400, help="how long the old secret keeps working")
    c.set_defaults(fn=lambda args: guarded(cmd_key_rotate, args))

    p = sub.add_parser("projects", help="manage a tenant's projects")
    psub = p.add_subparsers(dest="action", required=True)
    c = psub.add_parser("create", help="create a project in a tenant")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("name", help="the project's name, unique in its tenant")
    c.add_argument("--allowed-models", default=None, help="comma-separated models or pools, or `all`")
    c = psub.add_parser("list", help="a tenant's projects")
    c.add_argument("tenant", help="tenant name or id")
    c = psub.add_parser("update", help="rename a project or change its allowed models")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("project", help="project id or name")
    c.add_argument("--name", default=None, help="a new name, unique in its tenant")
    c.add_argument("--allowed-models", default=None, help="comma-separated models or pools, or `all`")
    c = psub.add_parser("delete", help="delete a project no key belongs to and no usage names")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("project", help="project id or name")
    p.set_defaults(fn=lambda args: guarded(cmd_projects, args))
