"""The `switchyard` command: serve, demo, migrate, tenants, keys, catalog (and the admin commands
in service.cli_admin)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NoReturn, TypeVar

import asyncpg

from service.db.embedded import EmbeddedPostgres
from service.settings import Settings, SettingsError, load_settings

T = TypeVar("T")
_ROOT = Path(__file__).resolve().parents[1]


def _die(message: str) -> NoReturn:
    print(f"switchyard: {message}", file=sys.stderr)
    raise SystemExit(2)


def resolve_database(data_dir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """DATABASE_URL, or an embedded Postgres started (and migrated) in the data directory.

    For `serve` and `demo`, which own their server for as long as they run."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, None
    from service.db.migrate import upgrade_to_head

    embedded = EmbeddedPostgres(data_dir)
    url = embedded.start()
    upgrade_to_head(url)
    os.environ["DATABASE_URL"] = url
    return url, embedded


def run_db(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run an admin command's work on one connection to the database it should use."""
    from service.cli_database import run_with_connection

    settings = _settings()
    return run_with_connection(work, settings.database_url, settings.data_dir)


# How long a stopping worker may drain before it is killed: the longest stream the gateway serves
# (600 s) and a margin, matched by the deployments' grace periods (deploy/).
DRAIN_SECONDS = 660


def serve_forever(host: str, port: int, workers: int, metrics_port: int | None = None,
                  drain_seconds: int = DRAIN_SECONDS) -> None:
    """The production server: granian, several workers, uvloop, one shared metrics directory.
    `drain_seconds` also bounds a worker that hangs while stopping: granian's worker can block in
    its own stop-signal handler (seen once in a demo's Ctrl+C, with nothing in flight), and only the
    kill timeout ends it."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    if metrics_port == port:
        _die(f"SWITCHYARD_METRICS_PORT ({metrics_port}) must differ from the serving port")
    # A separate metrics port is served by this process, which sees the workers' metrics only
    # through the shared directory, whatever the number of workers.
    if (workers > 1 or metrics_port is not None) and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
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
    from service.worker_signals import hold_stop_signals

    # In each forked worker before any of granian's code runs: a stop in that window is kept.
    os.register_at_fork(after_in_child=hold_stop_signals)

    if metrics_port is not None:
        from service.observability.metrics_listener import start_metrics_listener

        try:
            start_metrics_listener(host, metrics_port)
        except OSError as exc:
            _die(f"cannot serve metrics on {host}:{metrics_port}: {exc.strerror or exc}")
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
        workers_kill_timeout=drain_seconds,
        # A worker that dies (OOM, a segfault, kill -9) is replaced while the others keep serving; its
        # usage journal is replayed by whichever process claims it first.
        respawn_failed_workers=True,
    ).serve()


def _drain_seconds() -> int:
    raw = os.environ.get("SWITCHYARD_DRAIN_SECONDS", "").strip()
    if not raw:
        return DRAIN_SECONDS
    if not raw.isdigit() or int(raw) < 1:
        _die(f"SWITCHYARD_DRAIN_SECONDS must be a whole number of seconds, at least 1 (got {raw!r})")
    return int(raw)


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _settings()
    drain = _drain_seconds()
    _, embedded = resolve_database(settings.data_dir)
    try:
        serve_forever(args.host, args.port, args.workers, settings.metrics_port, drain_seconds=drain)
    finally:
        if embedded is not None:
            embedded.stop()


def cmd_migrate(args: argparse.Namespace) -> None:
    from service.cli_database import open_database
    from service.db.migrate import upgrade_to_head
    from service.db.reader_role import PASSWORD_ENV, READER_ROLE, ReaderPasswordError, check_password

    settings = _settings()
    password = os.environ.get(PASSWORD_ENV) or None
    if password is not None:
        try:
            check_password(password)
        except ReaderPasswordError as err:
            _die(str(err))
    # The embedded database is migrated as it is opened; DATABASE_URL's here.
    database = open_database(settings.database_url, settings.data_dir, always_migrate=True)
    try:
        if settings.database_url is not None:
            upgrade_to_head(database.url)
        if password is not None:
            asyncio.run(_apply_reader_password(database.url, password))
    finally:
        database.close()
    print("database is at the latest migration")
    if password is not None:
        print(f"{READER_ROLE} (Grafana's read-only role) logs in with the password in {PASSWORD_ENV}")


async def _apply_reader_password(url: str, password: str) -> None:
    from service.db.reader_role import set_reader_password

    conn = await asyncpg.connect(url)
    try:
        await set_reader_password(conn, password)
    finally:
        await conn.close()


def cmd_demo(args: argparse.Namespace) -> None:
    from service.demo import run_demo

    run_demo(args.host, args.port)


def cmd_tenants(args: argparse.Namespace) -> None:
    from service.auth import tenants

    async def run(conn: asyncpg.Connection) -> None:
        if args.action == "create":
            markup = _decimal(args.markup)
            allowed = args.allowed_models.split(",") if args.allowed_models else None
            t = await tenants.create_tenant(conn, args.name, markup=markup, allowed_models=allowed)
            print(f"created tenant {t.name} ({t.id})")
        else:
            for t in await tenants.list_tenants(conn):
                print(f"{t.id}  {t.name}  {t.status}  markup={t.markup}")

    run_db(run)


def cmd_keys(args: argparse.Namespace) -> None:
    from service.auth import tenants
    from service.auth.cache import notify_key_changed

    async def run(conn: asyncpg.Connection) -> None:
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
            revoked = await tenants.revoke_key(conn, args.key)
            if revoked is None:
                _die(f"no key {args.key!r}")
            await notify_key_changed(conn, revoked.prefix)
            print(f"revoked {revoked.prefix}…")

    run_db(run)


def cmd_catalog_sync(args: argparse.Namespace) -> None:
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

    async def run(conn: asyncpg.Connection) -> None:
        current = await sync.latest_version(conn)
        if current is None:
            current = json.loads(settings.catalog_path.read_text() if settings.catalog_path else default_catalog_text())
        merged, report = sync.merge_listing(current, listing)
        print("\n".join(report.lines()))
        if args.output:
            version, _ = sync.new_version(merged)
            # A one-shot command: nothing else runs on this loop for a blocking write to delay.
            Path(args.output).write_text(json.dumps({**merged, "version": version}, indent=1) + "\n")  # noqa: ASYNC240
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

    run_db(run)


def _decimal(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        _die(f"not a decimal: {value!r}")
    if not number.is_finite() or number < 0:
        _die(f"must be a non-negative decimal: {value!r}")
    return number


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        _die(str(exc))


def version() -> str:
    """The installed distribution's version, or the source tree's when run from a checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("switchyard")
    except PackageNotFoundError:
        import tomllib

        with (_ROOT / "pyproject.toml").open("rb") as f:
            found: str = tomllib.load(f)["project"]["version"]
        return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchyard", description="LLM cost-routing and metering gateway",
        epilog="Without DATABASE_URL, commands use the embedded database `switchyard demo` runs "
               "(in $SWITCHYARD_DATA_DIR/demo, default .switchyard/demo): the running one, or "
               "started for the command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gateway (production server)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("demo", help="embedded Postgres + stand-in upstreams + a demo tenant and key")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("migrate", help="apply database migrations (and set the Grafana reader's "
                                       "password from SWITCHYARD_GRAFANA_READER_PASSWORD)")
    p.set_defaults(fn=cmd_migrate)

    p = sub.add_parser("tenants", help="manage tenants")
    tsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = tsub.add_parser("create", help="create a tenant")
    c.add_argument("name", help="the tenant's unique name")
    c.add_argument("--markup", default="0", help="fraction added to provider cost when billing, e.g. 0.2")
    c.add_argument("--allowed-models", default=None, help="comma-separated model slugs (default: all)")
    tsub.add_parser("list", help="list every tenant: id, name, status, markup")
    p.set_defaults(fn=cmd_tenants)

    p = sub.add_parser("keys", help="manage API keys")
    ksub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = ksub.add_parser("create", help="create a key (printed once)")
    c.add_argument("tenant", help="tenant name or id")
    c.add_argument("--name", default=None, help="a label for the key")
    c.add_argument("--rpm", type=int, default=None, help="requests a minute this key may make")
    c.add_argument("--tpm", type=int, default=None, help="tokens a minute this key may use")
    c = ksub.add_parser("list", help="a tenant's keys (prefixes only)")
    c.add_argument("tenant", help="tenant name or id")
    c = ksub.add_parser("revoke", help="revoke a key; running gateways refuse it at once")
    c.add_argument("key", help="key id or prefix")
    p.set_defaults(fn=cmd_keys)

    p = sub.add_parser("catalog", help="the model catalog and price book")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = csub.add_parser("sync", help="merge Baseten's GET /v1/models and record a new price version")
    c.add_argument("--dry-run", action="store_true", help="show the differences, record nothing")
    c.add_argument("--effective-from", default=None, help="ISO time the new prices take effect (default: now)")
    c.add_argument("--output", default=None, help="also write the merged catalog to this file")
    c.set_defaults(fn=cmd_catalog_sync)

    from service.cli_admin import register

    register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
        args.fn(args)
        # A reader that went away (`| head`) shows up here, inside the handler, rather than as
        # an "Exception ignored" message when the interpreter flushes stdout on exit.
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's documented recipe: point stdout at /dev/null so the flush at exit is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(128 + signal.SIGPIPE) from None  # what a shell reports for a SIGPIPE death
    except KeyboardInterrupt:
        raise SystemExit(128 + signal.SIGINT) from None


if __name__ == "__main__":
    main()
