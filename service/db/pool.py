"""The asyncpg connection pool the service shares for every query."""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# One connection: what a transaction or a cursor needs. `pool.acquire()` lends a proxy that
# forwards to a pooled connection, so both are accepted wherever a connection is.
Conn: TypeAlias = "asyncpg.Connection | PoolConnectionProxy"
# What runs a query: a connection, or the pool (which lends one for the call).
Db: TypeAlias = "Conn | asyncpg.Pool"


class Row(Protocol):
    """A result row read by column name: an asyncpg Record, or a dict built like one."""

    def __getitem__(self, column: str, /) -> Any: ...


def returned(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row an INSERT or UPDATE ... RETURNING gives back when its statement always yields one."""
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


async def _init_connection(conn: asyncpg.Connection) -> None:
    from service.metering.ledger import prepare_connection

    await prepare_connection(conn)


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        # Fail fast when the database is away: callers fall back (usage spill, cached auth).
        timeout=5,
        command_timeout=30,
    )


# Queries on the request path (key lookups, leases, budgets) wait at most this long for a
# connection and for their answer; past it the caller falls back as if the database were away.
REQUEST_PATH_TIMEOUT = 2.0


async def fetchrow_bounded(
    pool: asyncpg.Pool, query: str, *args: object, timeout: float = REQUEST_PATH_TIMEOUT
) -> asyncpg.Record | None:
    async with pool.acquire(timeout=timeout) as conn:
        return await conn.fetchrow(query, *args, timeout=timeout)


async def fetch_bounded(
    pool: asyncpg.Pool, query: str, *args: object, timeout: float = REQUEST_PATH_TIMEOUT
) -> list[asyncpg.Record]:
    async with pool.acquire(timeout=timeout) as conn:
        return await conn.fetch(query, *args, timeout=timeout)


async def ensure_partitions(pool: asyncpg.Pool, months_ahead: int = 2) -> int:
    created: int = await pool.fetchval("SELECT switchyard_ensure_usage_partitions($1)", months_ahead)
    return created
