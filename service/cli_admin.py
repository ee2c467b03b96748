"""`switchyard export | budgets | usage | tenants update`: the admin API's operations from a shell.

Projects and the key lifecycle are in service.cli_access, registered from here.

They run against DATABASE_URL (or the embedded database) through the same code the HTTP API
uses, so `switchyard export` writes exactly the bytes GET /admin/billing/export serves, and
`switchyard export --focus` those of GET /admin/billing/focus.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from service.errors import GatewayError

_GROUP_KEYS = "tenant,project,key,day,model,front_end,tag,user"  # service.metering.usage_query.GROUP_KEYS

if TYPE_CHECKING:
    from service.metering.budget_records import BudgetRecord


def _run(work: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
    from service.cli import run_db

    run_db(work)


def _filter_params(args: argparse.Namespace) -> dict[str, str | None]:
    """The usage filters a command was given, by their API names."""
    return {name: getattr(args, name, None) for name in ("tenant", "project", "key", "model", "front_end", "tag",
                                                         "user")}


def cmd_export(args: argparse.Namespace) -> None:
    from service.metering import exports, focus
    from service.metering.usage_query import (
        UsageQuery,
        check_user_scope,
        filter_refs,
        parse_group_by,
        resolve_filters,
    )

    month = exports.parse_period(args.period)
    if not args.focus and args.granularity is not None:
        raise GatewayError(400, "--granularity applies to --focus exports only")
    fmt = focus.parse_format(args.format) if args.focus else exports.parse_format(args.format)
    granularity = focus.parse_granularity(args.granularity)
    group_by = parse_group_by(args.group_by, default=exports.BILLING_GROUPS)
    refs = filter_refs(_filter_params(args))

    async def run(conn: asyncpg.Connection) -> None:
        filters = await resolve_filters(conn, refs, tenant_id=None)
        check_user_scope(UsageQuery(month, month, group_by, filters))

        async def chunks() -> AsyncIterator[bytes]:
            if not args.focus:
                async for chunk in exports.billing_export(conn, month, fmt, group_by=group_by, filters=filters):
                    yield chunk
                return
            from service.cli import _settings
            from service.metering.focus_skus import PriceLookup

            settings = _settings()
            prices = await PriceLookup.like_the_service(conn, settings.catalog_path,
                                                        settings.catalog_overrides_path)
            async for chunk in focus.focus_export(conn, month, fmt, granularity, prices):
                yield chunk

        if not args.output:
            async for chunk in chunks():
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        # Written aside and renamed when complete, so a failed run never leaves a truncated bill.
        target = Path(args.output)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as out:
                async for chunk in chunks():
                    out.write(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    _run(run)


def cmd_budgets(args: argparse.Namespace) -> None:
    from service.api.admin import budget_changed, budget_fields, budget_level
    from service.auth import tenants
    from service.metering import budget_records

    async def run(conn: asyncpg.Connection) -> None:
        tenant = await tenants.get_tenant(conn, args.tenant)
        if tenant is None:
            raise GatewayError(404, f"no tenant {args.tenant!r}")
        if args.action == "set":
            if args.window_hours is not None and args.period != "rolling":
                raise GatewayError(400, "--window-hours belongs to --period rolling")
            body = {"period": args.period, "limit_usd": args.limit, "hard": not args.soft, "key_id": args.key,
                    "project_id": args.project, "window_hours": args.window_hours}
            try:
                fields = budget_fields(body)
            except GatewayError as err:
                raise GatewayError(400, f"{_option(err.param)}: {err.message}") from None
            level = await budget_level(conn, tenant, fields)
            budget, created = await budget_records.upsert_budget(
                conn, tenant.id, period=fields["period"], limit_usd=fields["limit_usd"], hard=fields["hard"],
                window_hours=fields["window_hours"], key_id=level["key_id"], project_id=level["project_id"])
            await budget_changed(conn, tenant.id)
            print(f"{'created' if created else 'updated'} budget {budget.id}: {_budget_line(budget)}")
        elif args.action == "delete":
            import uuid

            try:
                budget_id = uuid.UUID(args.budget)
            except ValueError:
                raise GatewayError(400, f"a budget id is a UUID, got {args.budget!r}") from None
            record = await budget_records.get_budget(conn, budget_id)
            if record is None or record.tenant_id != tenant.id:
                raise GatewayError(404, f"tenant {tenant.name} has no budget {args.budget}")
            await budget_records.delete_budget(conn, budget_id)
            await budget_changed(conn, tenant.id)
            print(f"deleted budget {budget_id}")
        else:
            for budget in await budget_records.list_budgets(conn, tenant.id):
                print(f"{budget.id}  {_budget_line(budget)}")

    _run(run)


def _option(param: str | None) -> str:
    names = {"limit_usd": "--limit", "key_id": "--key", "project_id": "--project", "window_hours": "--window-hours"}
    return names.get(param or "", f"--{(param or 'value').replace('_', '-')}")


def _budget_line(budget: BudgetRecord) -> str:
    if budget.key_id:
        scope = f"key {budget.key_prefix}"
    elif budget.project_id:
        scope = f"project {budget.project_name}"
    else:
        scope = "whole tenant"
    period = f"rolling {budget.window_hours}h" if budget.period == "rolling" else budget.period
    return (f"{period} limit ${budget.limit_usd:f} ({'hard' if budget.hard else 'soft'}, {scope});"
            f" spent ${budget.spent_usd:f} since {budget.current_period_start}")


_KEY_COLUMNS = {"tenant": "tenant_name", "project": "project_name", "key": "key_prefix", "day": "day",
                "model": "model", "front_end": "front_end", "tag": "tag", "user": "user"}


def cmd_usage(args: argparse.Namespace) -> None:
    from service.api.usage import admin_query
    from service.metering import reports

    params = {**_filter_params(args), "group_by": args.group_by, "limit": args.limit}
    first_last = reports.day_range(args.from_, args.to, today=datetime.now(UTC).date())

    async def run(conn: asyncpg.Connection) -> None:
        summary = await reports.usage_summary(conn, await admin_query(conn, params, first_last))
        keys = [_KEY_COLUMNS[k] for k in summary["group_by"]]
        columns = [*keys, "requests", "attempts", *reports.TOKEN_FIELDS, "provider_cost_usd", "billed_usd"]
        table = [columns] + [["-" if row[c] is None else str(row[c]) for c in columns] for row in summary["data"]]
        total = summary["total"]
        table.append(["TOTAL"] + [""] * (len(keys) - 1) + [str(total[c]) for c in columns[len(keys):]])
        widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
        print(f"usage {summary['from']} .. {summary['to']}")
        for row in table:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if summary["has_more"]:
            print(f"(the first {len(summary['data'])} groups; raise --limit for more)")

    _run(run)


def add_filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", default=None, help="tenant name or id")
    p.add_argument("--project", default=None, help="project id (or name, with --tenant)")
    p.add_argument("--key", default=None, help="key id or prefix")
    p.add_argument("--model", default=None, help="served model")
    p.add_argument("--front-end", dest="front_end", default=None, help="baseten, xpay or orthogonal")
    p.add_argument("--tag", default=None, help="requests carrying this tag")
    p.add_argument("--user", default=None, help="requests for this end user (needs --tenant)")


def cmd_tenants_update(args: argparse.Namespace) -> None:
    from service.api.admin import tenant_changes, update_tenant
    from service.auth import tenants
    from service.catalog.loader import load_catalog
    from service.cli import _settings

    settings = _settings()
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.status is not None:
        body["status"] = args.status
    if args.markup is not None:
        body["markup"] = args.markup
    if args.allowed_models is not None:
        body["allowed_models"] = None if args.allowed_models == "all" else _split(args.allowed_models)
    if args.denied_front_ends is not None:
        body["denied_front_ends"] = _split(args.denied_front_ends)
    if not body:
        raise GatewayError(400, "nothing to change: give at least one of --name --status --markup "
                                "--allowed-models --denied-front-ends")
    catalog = load_catalog(settings.catalog_path, settings.catalog_overrides_path)

    async def run(conn: asyncpg.Connection) -> None:
        changes = tenant_changes(body, catalog)
        tenant = await tenants.get_tenant(conn, args.tenant)
        if tenant is None:
            raise GatewayError(404, f"no tenant {args.tenant!r}")
        t = await update_tenant(conn, tenant, changes)
        allowed = ",".join(t.allowed_models) if t.allowed_models is not None else "all"
        print(f"updated tenant {t.name} ({t.id}): status={t.status} markup={t.markup}"
              f" allowed_models={allowed}"
              f" denied_front_ends={','.join(t.denied_front_ends) or '-'}")

    _run(run)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    # argparse has no public accessor for a parser's sub-commands; _actions has been stable for decades.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"{parser.prog} has no sub-commands")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the admin commands to the `switchyard` parser (its top-level sub-commands)."""
    p = sub.add_parser("export", help="billing export for a month: per tenant, day, model and front end;"
                                      " with --focus, a FOCUS 1.2 cost and usage dataset")
    p.add_argument("--period", required=True, help="the month, as YYYY-MM")
    p.add_argument("--focus", action="store_true", help="FOCUS 1.2 rows (csv or parquet) for FinOps tools")
    p.add_argument("--format", default="csv", choices=("csv", "jsonl", "parquet"),
                   help="csv or jsonl; csv or parquet with --focus")
    p.add_argument("--granularity", default=None, choices=("day", "hour"),
                   help="the charge period of --focus rows (default: day)")
    p.add_argument("--output", default=None, help="file to write (default: standard output)")
    p.add_argument("--group-by", default=None, help="comma-separated subset of " + _GROUP_KEYS
                   + " (default: tenant,day,model,front_end)")
    add_filter_options(p)
    p.set_defaults(fn=lambda args: _guarded(cmd_export, args))

    p = sub.add_parser("budgets", help="manage tenant budgets")
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = bsub.add_parser("set", help="set (create or replace) a budget")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("--period", required=True, choices=("day", "month", "rolling"), help="the budget's period")
    c.add_argument("--window-hours", type=int, default=None, help="a rolling budget's window, in hours")
    c.add_argument("--limit", required=True, help="limit in USD, e.g. 250 or 12.50")
    c.add_argument("--soft", action="store_true", help="record overspend instead of refusing requests")
    c.add_argument("--key", default=None, help="limit one key (id or prefix) instead of the whole tenant")
    c.add_argument("--project", default=None, help="limit one project (id or name) instead of the whole tenant")
    c = bsub.add_parser("list", help="a tenant's budgets and this period's spend")
    c.add_argument("tenant", help="tenant name or id")
    c = bsub.add_parser("delete", help="delete a budget")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("budget", help="budget id")
    p.set_defaults(fn=lambda args: _guarded(cmd_budgets, args))

    p = sub.add_parser("usage", help="usage and cost across tenants, from the daily rollup")
    p.add_argument("--from", dest="from_", default=None,
                   help="first day, YYYY-MM-DD (default: start of month)")
    p.add_argument("--to", default=None, help="last day, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--group-by", default=None, help="comma-separated subset of " + _GROUP_KEYS)
    p.add_argument("--limit", default=None, help="at most this many groups (by user: the biggest spenders)")
    add_filter_options(p)
    p.set_defaults(fn=lambda args: _guarded(cmd_usage, args))

    tenants = _subparsers(sub.choices["tenants"])
    c = tenants.add_parser("update", help="change a tenant's name, status, markup or model policy")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("--name", default=None, help="a new unique name")
    c.add_argument("--status", default=None, choices=("active", "disabled"),
                   help="a disabled tenant's keys are refused")
    c.add_argument("--markup", default=None, help="fraction added to provider cost, e.g. 0.2")
    c.add_argument("--allowed-models", default=None, help="comma-separated models or pools, or `all`")
    c.add_argument("--denied-front-ends", default=None,
                   help="comma-separated front ends; empty string for none")
    # A sub-command's defaults override its parent's, so this wins over `tenants`' own handler.
    c.set_defaults(fn=lambda args: _guarded(cmd_tenants_update, args))

    from service.cli_access import register as register_access

    register_access(sub, _guarded)


def _guarded(fn: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
    """Validation and lookup errors become the CLI's usual one-line message and exit status 2."""
    from service.cli import _die

    try:
        fn(args)
    except GatewayError as err:
        _die(err.message)
