"""The asyncpg connection pool the service shares for every query."""

from __future__ import annotations

import asyncpg


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


async def fetchrow_bounded(pool: asyncpg.Pool, query: str, *args, timeout: float = REQUEST_PATH_TIMEOUT):
    async with pool.acquire(timeout=timeout) as conn:
        return await conn.fetchrow(query, *args, timeout=timeout)


async def fetch_bounded(pool: asyncpg.Pool, query: str, *args, timeout: float = REQUEST_PATH_TIMEOUT):
    async with pool.acquire(timeout=timeout) as conn:
        return await conn.fetch(query, *args, timeout=timeout)


async def ensure_partitions(pool: asyncpg.Pool, months_ahead: int = 2) -> int:
    return await pool.fetchval("SELECT switchyard_ensure_usage_partitions($1)", months_ahead)
