"""`switchyard export | budgets | usage | tenants update`: the admin API's operations from a shell.

They run against DATABASE_URL (or the embedded database) through the same code the HTTP API
uses, so `switchyard export` writes exactly the bytes GET /admin/billing/export serves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from service.errors import GatewayError


def _run(fn) -> None:
    from service.cli import _with_pool

    asyncio.run(_with_pool(fn))


def cmd_export(args) -> None:
    from service.metering import exports

    month = exports.parse_period(args.period)
    fmt = exports.parse_format(args.format)

    async def run(conn):
        if not args.output:
            async for chunk in exports.billing_export(conn, month, fmt):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        # Written aside and renamed when complete, so a failed run never leaves a truncated bill.
        target = Path(args.output)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as out:
                async for chunk in exports.billing_export(conn, month, fmt):
                    out.write(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    _run(run)


def cmd_budgets(args) -> None:
    from service.api.admin import budget_changed, decimal_value
    from service.auth import tenants
    from service.metering import budget_records

    async def run(conn):
        tenant = await tenants.get_tenant(conn, args.tenant)
        if tenant is None:
            raise GatewayError(404, f"no tenant {args.tenant!r}")
        if args.action == "set":
            limit = decimal_value(args.limit, "--limit", integer_digits=10, places=10)
            key_id = None
            if args.key:
                key_id = await budget_records.resolve_key(conn, tenant.id, args.key)
                if key_id is None:
                    raise GatewayError(404, f"tenant {tenant.name} has no key {args.key!r}")
            budget, created = await budget_records.upsert_budget(
                conn, tenant.id, period=args.period, limit_usd=limit, hard=not args.soft, key_id=key_id)
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


def _budget_line(budget) -> str:
    scope = f"key {budget.key_prefix}" if budget.key_id else "whole tenant"
    return (f"{budget.period} limit ${budget.limit_usd:f} ({'hard' if budget.hard else 'soft'}, {scope});"
            f" spent ${budget.spent_usd:f} since {budget.current_period_start}")


_KEY_COLUMNS = {"tenant": "tenant_name", "day": "day", "model": "model", "front_end": "front_end"}


def cmd_usage(args) -> None:
    from service.metering import reports

    first, last = reports.day_range(args.from_, args.to, today=datetime.now(UTC).date())
    group_by = reports.parse_group_by(args.group_by)

    async def run(conn):
        summary = await reports.usage_summary(conn, first, last, group_by)
        keys = [_KEY_COLUMNS[k] for k in summary["group_by"]]
        columns = [*keys, "requests", "attempts", *reports.TOKEN_FIELDS, "provider_cost_usd", "billed_usd"]
        table = [columns] + [[str(row[c]) for c in columns] for row in summary["data"]]
        total = summary["total"]
        table.append(["TOTAL"] + [""] * (len(keys) - 1) + [str(total[c]) for c in columns[len(keys):]])
        widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
        print(f"usage {summary['from']} .. {summary['to']}")
        for row in table:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())

    _run(run)


def cmd_tenants_update(args) -> None:
    from service.api.admin import tenant_changes, update_tenant
    from service.auth import tenants
    from service.catalog.loader import load_catalog
    from service.cli import _settings

    settings = _settings()
    body: dict = {}
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

    async def run(conn):
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


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    # argparse has no public accessor for a parser's sub-commands; _actions has been stable for decades.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError(f"{parser.prog} has no sub-commands")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the admin commands to the `switchyard` parser (its top-level sub-commands)."""
    p = sub.add_parser("export", help="billing export for a month: per tenant, day, model and front end")
    p.add_argument("--period", required=True, help="the month, as YYYY-MM")
    p.add_argument("--format", default="csv", choices=("csv", "jsonl"))
    p.add_argument("--output", default=None, help="file to write (default: standard output)")
    p.set_defaults(fn=lambda args: _guarded(cmd_export, args))

    p = sub.add_parser("budgets", help="manage tenant budgets")
    bsub = p.add_subparsers(dest="action", required=True)
    c = bsub.add_parser("set", help="set (create or replace) a budget")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("--period", required=True, choices=("day", "month"))
    c.add_argument("--limit", required=True, help="limit in USD, e.g. 250 or 12.50")
    c.add_argument("--soft", action="store_true", help="record overspend instead of refusing requests")
    c.add_argument("--key", default=None, help="limit one key (id or prefix) instead of the whole tenant")
    c = bsub.add_parser("list", help="a tenant's budgets and this period's spend")
    c.add_argument("tenant")
    c = bsub.add_parser("delete", help="delete a budget")
    c.add_argument("tenant")
    c.add_argument("budget", help="budget id")
    p.set_defaults(fn=lambda args: _guarded(cmd_budgets, args))

    p = sub.add_parser("usage", help="usage and cost across tenants, from the daily rollup")
    p.add_argument("--from", dest="from_", default=None,
                   help="first day, YYYY-MM-DD (default: start of month)")
    p.add_argument("--to", default=None, help="last day, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--group-by", default=None, help="comma-separated subset of tenant,model,front_end,day")
    p.set_defaults(fn=lambda args: _guarded(cmd_usage, args))

    tenants = _subparsers(sub.choices["tenants"])
    c = tenants.add_parser("update", help="change a tenant's name, status, markup or model policy")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("--name", default=None)
    c.add_argument("--status", default=None, choices=("active", "disabled"))
    c.add_argument("--markup", default=None, help="fraction added to provider cost, e.g. 0.2")
    c.add_argument("--allowed-models", default=None, help="comma-separated models or pools, or `all`")
    c.add_argument("--denied-front-ends", default=None,
                   help="comma-separated front ends; empty string for none")
    # A sub-command's defaults override its parent's, so this wins over `tenants`' own handler.
    c.set_defaults(fn=lambda args: _guarded(cmd_tenants_update, args))


def _guarded(fn, args) -> None:
    """Validation and lookup errors become the CLI's usual one-line message and exit status 2."""
    from service.cli import _die

    try:
        fn(args)
    except GatewayError as err:
        _die(err.message)
