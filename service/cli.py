"""The `switchyard` command: serve, demo, migrate, tenants, keys."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from service.settings import SettingsError, load_settings


def _die(message: str) -> None:
    print(f"switchyard: {message}", file=sys.stderr)
    raise SystemExit(2)


def resolve_database(data_dir: Path) -> tuple[str, object | None]:
    """DATABASE_URL, or an embedded Postgres started (and migrated) in the data directory."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, None
    from service.db.embedded import EmbeddedPostgres
    from service.db.migrate import upgrade_to_head

    embedded = EmbeddedPostgres(data_dir)
    url = embedded.start()
    upgrade_to_head(url)
    os.environ["DATABASE_URL"] = url
    return url, embedded


def serve_forever(host: str, port: int, workers: int) -> None:
    """The production server: granian, several workers, uvloop, one shared metrics directory."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiproc = Path(os.environ.get("SWITCHYARD_DATA_DIR", ".switchyard")) / "prometheus"
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    if (path := os.environ.get("PROMETHEUS_MULTIPROC_DIR")):
        # Stale files from a previous run would be summed into this one's counters.
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    # Imported before the fork, so each worker starts from loaded modules (shared pages, and a
    # shorter window before it can take a stop signal: see service.worker_signals). Only now:
    # prometheus_client picks its multiprocess mode from the environment when first imported.
    import service.app  # noqa: F401

    Granian(
        "service.app:app_from_env",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        log_access=False,
        backlog=2048,
        workers_kill_timeout=660,
    ).serve()


def cmd_serve(args) -> None:
    settings = _settings()
    _, embedded = resolve_database(settings.data_dir)
    try:
        serve_forever(args.host, args.port, args.workers)
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_migrate(args) -> None:
    from service.db.migrate import upgrade_to_head

    settings = _settings()
    if settings.database_url is None:
        _, embedded = resolve_database(settings.data_dir)
        embedded.stop()
        print("migrated the embedded database")
        return
    upgrade_to_head(settings.database_url)
    print("database is at the latest migration")


def cmd_demo(args) -> None:
    from service.demo import run_demo

    run_demo(args.host, args.port)


async def _with_pool(fn):
    import asyncpg

    settings = _settings()
    url = settings.database_url
    embedded = None
    if url is None:
        url, embedded = resolve_database(settings.data_dir)
    conn = await asyncpg.connect(url)
    try:
        return await fn(conn)
    finally:
        await conn.close()
        if embedded is not None:
            embedded.stop()


def cmd_tenants(args) -> None:
    from service.auth import tenants

    async def run(conn):
        if args.action == "create":
            markup = _decimal(args.markup)
            allowed = args.allowed_models.split(",") if args.allowed_models else None
            t = await tenants.create_tenant(conn, args.name, markup=markup, allowed_models=allowed)
            print(f"created tenant {t.name} ({t.id})")
        else:
            for t in await tenants.list_tenants(conn):
                print(f"{t.id}  {t.name}  {t.status}  markup={t.markup}")

    asyncio.run(_with_pool(run))


def cmd_keys(args) -> None:
    from service.auth import tenants
    from service.auth.cache import notify_key_changed

    async def run(conn):
        if args.action == "create":
            tenant = await tenants.get_tenant(conn, args.tenant)
            if tenant is None:
                _die(f"no tenant {args.tenant!r}")
            key, record = await tenants.create_key(conn, tenant.id, name=args.name,
                                                   rpm_limit=args.rpm, tpm_limit=args.tpm)
            print(key)
            print(f"(key {record.prefix}… for tenant {tenant.name}; shown once, store it now)", file=sys.stderr)
        elif args.action == "list":
            tenant = await tenants.get_tenant(conn, args.tenant)
            if tenant is None:
                _die(f"no tenant {args.tenant!r}")
            for k in await tenants.list_keys(conn, tenant.id):
                print(f"{k.prefix}…  {k.name or '-'}  created {k.created_at:%Y-%m-%d}  "
                      f"{'revoked' if k.revoked_at else 'active'}")
        else:
            record = await tenants.revoke_key(conn, args.key)
            if record is None:
                _die(f"no key {args.key!r}")
            await notify_key_changed(conn, record.prefix)
            print(f"revoked {record.prefix}…")

    asyncio.run(_with_pool(run))


def cmd_catalog_sync(args) -> None:
    import json

    import httpx

    from service.auth.cache import notify_prices_changed
    from service.catalog import sync
    from service.catalog.loader import default_catalog_text

    settings = _settings()
    if not settings.baseten_api_key:
        _die("BASETEN_API_KEY is needed to read Baseten's /v1/models")
    response = httpx.get(settings.baseten_base_url.rstrip("/") + "/models",
                         headers={"Authorization": f"Api-Key {settings.baseten_api_key}"}, timeout=30)
    if response.status_code != 200:
        _die(f"Baseten's /v1/models answered {response.status_code}")
    listing = response.json()

    async def run(conn):
        current = await sync.latest_version(conn)
        if current is None:
            current = json.loads(settings.catalog_path.read_text() if settings.catalog_path else default_catalog_text())
        merged, report = sync.merge_listing(current, listing)
        print("\n".join(report.lines()))
        if args.output:
            version, _ = sync.new_version(merged)
            Path(args.output).write_text(json.dumps({**merged, "version": version}, indent=1) + "\n")
            print(f"wrote {args.output}")
        if args.dry_run:
            return
        if report.empty:
            print("nothing to record: the newest price version already matches Baseten's listing")
            return
        effective = datetime.fromisoformat(args.effective_from) if args.effective_from else None
        version = await sync.record_version(conn, merged, effective or sync.new_version(merged)[1])
        await notify_prices_changed(conn)
        print(f"recorded price version {version}; running gateways load it now")

    from datetime import datetime

    asyncio.run(_with_pool(run))


def _decimal(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        _die(f"not a decimal: {value!r}")
    if not number.is_finite() or number < 0:
        _die(f"must be a non-negative decimal: {value!r}")
    return number


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        _die(str(exc))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard", description="LLM cost-routing and metering gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gateway (production server)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("demo", help="embedded Postgres + stand-in upstreams + a demo tenant and key")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(fn=cmd_migrate)

    p = sub.add_parser("tenants", help="manage tenants")
    tsub = p.add_subparsers(dest="action", required=True)
    c = tsub.add_parser("create")
    c.add_argument("name")
    c.add_argument("--markup", default="0", help="fraction added to provider cost when billing, e.g. 0.2")
    c.add_argument("--allowed-models", default=None, help="comma-separated model slugs")
    tsub.add_parser("list")
    p.set_defaults(fn=cmd_tenants)

    p = sub.add_parser("keys", help="manage API keys")
    ksub = p.add_subparsers(dest="action", required=True)
    c = ksub.add_parser("create")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("--name", default=None)
    c.add_argument("--rpm", type=int, default=None)
    c.add_argument("--tpm", type=int, default=None)
    c = ksub.add_parser("list")
    c.add_argument("tenant")
    c = ksub.add_parser("revoke")
    c.add_argument("key", help="key id or prefix")
    p.set_defaults(fn=cmd_keys)

    p = sub.add_parser("catalog", help="the model catalog and price book")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("sync", help="merge Baseten's GET /v1/models and record a new price version")
    c.add_argument("--dry-run", action="store_true", help="show the differences, record nothing")
    c.add_argument("--effective-from", default=None, help="ISO time the new prices take effect (default: now)")
    c.add_argument("--output", default=None, help="also write the merged catalog to this file")
    c.set_defaults(fn=cmd_catalog_sync)

    from service.cli_admin import register

    register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
