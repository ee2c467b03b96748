"""Unknown keys cost no query on the shared pool per request, while new keys work at once and revoked
ones stop at once on every process (each AuthCache here is one process: its own pool and listener)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from service.auth import tenants
from service.auth.cache import AuthCache, AuthUnavailable, notify_key_changed
from service.auth.keys import new_key


class CountingPool:
    """The real pool, counting every connection a lookup borrows (one borrow, one query)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.queries = 0

    def acquire(self, **kw: Any) -> Any:
        self.queries += 1
        return self.pool.acquire(**kw)


@asynccontextmanager
async def process(database_url: str, *, listen: bool = True,
                  **options: Any) -> AsyncIterator[tuple[AuthCache, CountingPool]]:
    pool = CountingPool(await asyncpg.create_pool(database_url, min_size=1, max_size=4))
    cache = AuthCache(lambda: pool, **options)  # type: ignore[arg-type,return-value]
    if listen:
        await cache.start(database_url)
    try:
        yield cache, pool
    finally:
        await cache.stop()
        await pool.pool.close()


async def new_tenant_key(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        tenant = await tenants.create_tenant(conn, f"unknown-keys-{new_key()[-8:]}")
        key, _ = await tenants.create_key(conn, tenant.id)  # as a script would: no announcement
        return key
    finally:
        await conn.close()


async def test_ten_thousand_random_keys_cost_a_bounded_number_of_queries(database_url):
    known = await new_tenant_key(database_url)
    async with process(database_url) as (cache, pool):
        assert await cache.authenticate(known) is not None
        pool.queries = 0
        started = time.monotonic()
        results = await asyncio.gather(*(cache.authenticate(new_key()) for _ in range(10_000)))
        for _ in range(2_000):  # one at a time, as a patient attacker would
            assert await cache.authenticate(new_key()) is None
        elapsed = time.monotonic() - started
        assert results == [None] * 10_000
        # Only the lookup budget for prefixes no announcement mentioned: its burst plus its rate.
        assert pool.queries <= 50 + 20 * elapsed + 1, (pool.queries, elapsed)
        assert await cache.authenticate(known) is not None  # known keys are untouched by the flood


async def test_the_same_unknown_key_repeated_is_looked_up_once(database_url):
    async with process(database_url, listen=False) as (cache, pool):
        key = new_key()
        assert await asyncio.gather(*(cache.authenticate(key) for _ in range(200))) == [None] * 200
        for _ in range(200):
            assert await cache.authenticate(key) is None
        assert pool.queries == 1


async def test_the_refusal_cache_is_bounded(database_url):
    async with process(database_url, listen=False, negative_cache_size=100,
                       unknown_lookups_per_second=1e9, unknown_lookup_burst=10**6) as (cache, _):
        for _ in range(1_000):
            assert await cache.authenticate(new_key()) is None
        assert cache.refused_entries() <= 100


async def test_without_the_key_directory_unknown_keys_are_rationed(database_url):
    """Before the listener has loaded which prefixes exist, a flood cannot be told from new keys:
    past the lookup budget the answer is 'cannot check now' (503), never a query per key."""
    async with process(database_url, listen=False) as (cache, pool):
        outcomes = await asyncio.gather(*(cache.authenticate(new_key()) for _ in range(2_000)),
                                        return_exceptions=True)
        assert pool.queries <= 60
        assert sum(isinstance(o, AuthUnavailable) for o in outcomes) >= 2_000 - 60
        assert all(o is None or isinstance(o, AuthUnavailable) for o in outcomes)


async def test_a_new_key_is_accepted_at_once_on_every_process(database_url):
    scarce = {"unknown_lookups_per_second": 0.001, "unknown_lookup_burst": 5}
    async with process(database_url, **scarce) as (a, _), process(database_url, **scarce) as (b, _):
        # Exhaust both processes' lookup budgets: only what announcements say can now pass.
        for cache in (a, b):
            await asyncio.gather(*(cache.authenticate(new_key()) for _ in range(50)))
        key = await new_tenant_key(database_url)
        # The database announces every new key when it commits; each process adds it on hearing it.
        deadline = time.monotonic() + 2
        while (await b.authenticate(key) is None or await a.authenticate(key) is None) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert await a.authenticate(key) is not None
        assert await b.authenticate(key) is not None
        assert time.monotonic() < deadline


async def test_a_new_key_needs_no_announcement_when_not_under_a_flood(database_url):
    async with process(database_url) as (cache, _):
        key = await new_tenant_key(database_url)
        assert await cache.authenticate(key) is not None  # no wait: the budget covers the lag


async def test_a_revoked_key_is_refused_at_once_on_every_process(database_url):
    key = await new_tenant_key(database_url)
    async with process(database_url) as (a, _), process(database_url) as (b, _):
        assert await a.authenticate(key) is not None
        assert await b.authenticate(key) is not None
        conn = await asyncpg.connect(database_url)
        try:
            record = await tenants.revoke_key(conn, key[:16])
            assert record is not None
            await notify_key_changed(conn, record.prefix)
            # What the admin API does on its own process before answering.
            a.evict(f"key:{record.prefix}")
            await conn.execute("SELECT 1")
        finally:
            await conn.close()
        assert await a.authenticate(key) is None
        deadline = time.monotonic() + 1
        while await b.authenticate(key) is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)


async def test_a_stale_lookup_racing_a_revocation_is_not_cached(database_url):
    """A lookup that read the row before a revocation committed must not outlive the announcement."""
    key = await new_tenant_key(database_url)
    async with process(database_url, ttl=30.0) as (cache, _):
        original = cache._load  # the race needs a lookup that an announcement overtakes

        async def slow_load(prefix: str, now: float) -> Any:
            entry = await original(prefix, now)
            cache.evict(f"key:{prefix}")  # the revocation's announcement lands meanwhile
            return entry

        cache._load = slow_load  # type: ignore[method-assign]
        assert await cache.authenticate(key) is not None  # this request began before the revocation
        cache._load = original  # type: ignore[method-assign]
        assert cache.cached_entries() == 0
