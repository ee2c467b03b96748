"""The database a `switchyard` admin command works on, and running a coroutine against it.

DATABASE_URL when it is set. Otherwise the embedded Postgres the demo uses (see
`service.db.embedded.choose_home`): joined when it is running, started for the command's
duration when it is not. Everything that can run Alembic happens before the command's event loop
starts, because Alembic's async environment runs a loop of its own.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg

from service.db.embedded import PGDATA, EmbeddedPostgres, choose_home, is_running

T = TypeVar("T")
Work = Callable[[asyncpg.Connection], Awaitable[T]]


@dataclass
class Database:
    url: str
    embedded: EmbeddedPostgres | None = None

    def close(self) -> None:
        """Lets go of an embedded server; it stops only if no other process holds it."""
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def open_database(database_url: str | None, data_root: Path, *, always_migrate: bool = False) -> Database:
    """DATABASE_URL, or the embedded database. Call it outside any event loop.

    An embedded server this command starts is migrated to head first; one already running was
    migrated by the process that started it (the demo, or serve), so joining it skips Alembic's
    couple of seconds unless `always_migrate`."""
    if database_url:
        return Database(database_url)
    home = choose_home(data_root)
    already_running = is_running(home)
    embedded = EmbeddedPostgres(home)
    url = embedded.start()
    database = Database(url, embedded)
    if always_migrate or not already_running:
        from service.db.migrate import upgrade_to_head

        try:
            upgrade_to_head(url)
        except BaseException:
            database.close()
            raise
    if not already_running:
        print(f"switchyard: started the embedded database in {home / PGDATA} for this command "
              "(DATABASE_URL is unset)", file=sys.stderr)
    return database


def run_with_connection(work: Work[T], database_url: str | None, data_root: Path) -> T:
    """Open the database, run `work` on one connection in a fresh event loop, close everything."""
    database = open_database(database_url, data_root)
    try:
        return asyncio.run(_connected(database.url, work))
    finally:
        database.close()


async def _connected(url: str, work: Work[T]) -> T:
    conn = await asyncpg.connect(url)
    try:
        return await work(conn)
    finally:
        await conn.close()
