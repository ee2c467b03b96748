"""Shared test plumbing: a real Postgres with the real migrations, stand-ins, a live gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg

LOCAL_ADMIN_URL = os.environ.get("SWITCHYARD_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class Postgres:
    """The machine's Postgres when one answers on 127.0.0.1:5432, else an embedded one."""

    def __init__(self) -> None:
        self.admin_url: str | None = None
        self._embedded = None

    def start(self) -> str:
        if _answers(LOCAL_ADMIN_URL):
            self.admin_url = LOCAL_ADMIN_URL
        else:
            from service.db.embedded import EmbeddedPostgres

            self._embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="switchyard-pg-")))
            self.admin_url = self._embedded.start()
        return self.admin_url

    def create_database(self, migrate: bool = True) -> str:
        name = f"switchyard_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(execute_sql(self.admin_url, f'CREATE DATABASE "{name}"'))
        url = self.admin_url.rsplit("/", 1)[0] + f"/{name}"
        if "?" in self.admin_url:
            url += "?" + self.admin_url.split("?", 1)[1]
        if migrate:
            from service.db.migrate import upgrade_to_head

            upgrade_to_head(url)
        return url

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].split("?")[0]
        asyncio.run(execute_sql(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()


def _answers(url: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


async def execute_sql(url: str, sql: str) -> None:
    """One statement on its own connection (CREATE DATABASE and the like cannot run in a transaction)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class TenantKey:
    tenant_id: uuid.UUID
    tenant_name: str
    key: str
    key_prefix: str


async def acreate_tenant_with_key(database_url: str, name: str | None = None, *, markup: str = "0",
                                  allowed_models: list[str] | None = None,
                                  denied_front_ends: list[str] | None = None,
                                  rpm: int | None = None, tpm: int | None = None) -> TenantKey:
    from service.auth import tenants

    conn = await asyncpg.connect(database_url)
    try:
        tenant = await tenants.create_tenant(
            conn, name or f"tenant-{uuid.uuid4().hex[:8]}", markup=Decimal(markup),
            allowed_models=allowed_models, denied_front_ends=denied_front_ends)
        key, record = await tenants.create_key(conn, tenant.id, rpm_limit=rpm, tpm_limit=tpm)
        return TenantKey(tenant.id, tenant.name, key, record.prefix)
    finally:
        await conn.close()


def create_tenant_with_key(database_url: str, name: str | None = None, **options) -> TenantKey:
    """For synchronous tests and fixtures; async tests await acreate_tenant_with_key."""
    return asyncio.run(acreate_tenant_with_key(database_url, name, **options))


def gateway_env(standins, database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "SWITCHYARD_DATA_DIR": str(data_dir),
        "SWITCHYARD_ADMIN_TOKEN": "test-admin-token-0123456789",
        "BASETEN_API_KEY": standins.api_keys["baseten"],
        "BASETEN_BASE_URL": standins.baseten_url,
        "UPSTREAM_FIRST_BYTE_TIMEOUT": "5",
        "UPSTREAM_TOTAL_TIMEOUT": "20",
        "USAGE_FLUSH_SECONDS": "0.05",
        "LOG_LEVEL": "WARNING",
    }
    if standins.xpay_url:
        env.update(XPAY_API_KEY=standins.api_keys["xpay"], XPAY_MCP_URL=standins.xpay_url)
    if standins.orthogonal_url:
        env.update(ORTHOGONAL_API_KEY=standins.api_keys["orthogonal"], ORTHOGONAL_BASE_URL=standins.orthogonal_url)
    env.update(extra)
    return env


async def fetch(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def wait_for_rows(database_url: str, sql: str, expected: int, *args, timeout: float = 10.0):
    """Poll until the query returns `expected` rows (the ledger is written off the request path)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await fetch(database_url, sql, *args)
        if len(rows) >= expected or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def async_openai_clients(base_urls: list[str], key: str, **options):
    """AsyncOpenAI clients that are closed on the way out, test passed or not.

    An async client left to the garbage collector can take a newer connection's reader off the
    event loop's selector when the file descriptor number has been reused: that request's answer
    then sits unread in the socket (seen here as 30 s timeouts on answers the gateway had sent)."""
    import openai

    options = {"max_retries": 0, "timeout": 30, **options}
    clients = [openai.AsyncOpenAI(base_url=url, api_key=key, **options) for url in base_urls]
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()
