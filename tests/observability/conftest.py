"""A freshly migrated database of the module's own, and the known rows the dashboards are checked on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.observability.grafana_helpers import seed
from tests.support import LOCAL_ADMIN_URL


@pytest.fixture(scope="module")
async def migrated_database() -> AsyncIterator[str]:
    from service.db.migrate import upgrade_to_head

    name = f"grafana_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(LOCAL_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = LOCAL_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        # Alembic's async env.py runs its own event loop: keep it off this one.
        await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def seeded(migrated_database: str) -> AsyncIterator[tuple[asyncpg.Connection, dict[str, object]]]:
    conn = await asyncpg.connect(migrated_database)
    try:
        known = await seed(conn)
        yield conn, known
    finally:
        await conn.close()
