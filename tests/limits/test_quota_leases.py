"""The lease protocol against real Postgres: several holders never pass a shared limit."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from service.metering.quota import QuotaLeaser
from tests.support import fetch


@pytest.fixture
async def pools(database_url):
    made = [await asyncpg.create_pool(database_url, min_size=1, max_size=4) for _ in range(2)]
    yield made
    for pool in made:
        await pool.close()


async def test_two_holders_never_pass_a_hard_limit(pools, database_url):
    limit = Decimal("1.00")
    period = datetime(2026, 11, 1, tzinfo=UTC)
    scope = f"budget:race-{random.randrange(10**9)}"
    leasers = [QuotaLeaser(lambda p=p: p) for p in pools]
    admitted: list[Decimal] = []

    async def request(leaser: QuotaLeaser, i: int) -> None:
        need = Decimal("0.03") + Decimal(i % 5) / 100
        if await leaser.reserve(scope, period, limit, need, Decimal("0.20")):
            await asyncio.sleep(random.random() / 100)
            actual = need - Decimal("0.01")  # the real cost is below the worst case
            leaser.settle(scope, period, need, actual)
            admitted.append(actual)

    await asyncio.gather(*(request(leasers[i % 2], i) for i in range(80)))
    for leaser in leasers:
        await leaser.flush(release_all=True)
    rows = await fetch(database_url, "SELECT used FROM quota_counters WHERE scope = $1", scope)
    assert rows[0]["used"] == sum(admitted)
    assert sum(admitted) <= limit
    # Nearly all of the limit was used: each holder can strand at most one slice's remainder at
    # the end (until it idles and gives it back), so at most two slices here.
    assert limit - sum(admitted) < 2 * Decimal("0.20")
    leases = await fetch(database_url, "SELECT * FROM quota_leases WHERE scope = $1", scope)
    assert leases == []
    # Leasing slices, not a database write per request.
    assert sum(leaser.db_calls for leaser in leasers) < 40


async def test_expired_lease_of_a_dead_holder_counts_as_used(pools, database_url):
    period = datetime(2026, 11, 1, tzinfo=UTC)
    scope = f"budget:dead-{random.randrange(10**9)}"
    pool = pools[0]
    await pool.fetch(
        "SELECT * FROM switchyard_quota_lease($1, $2, 'dead-process', 10, 4, 4, 0)", scope, period
    )
    await asyncio.sleep(0.05)
    row = await pool.fetchrow(
        "SELECT * FROM switchyard_quota_lease($1, $2, 'alive', 10, 7, 7, 30)", scope, period
    )
    assert row["granted"] == 0  # 4 of 10 are gone with the dead holder: never overshoot
    row = await pool.fetchrow(
        "SELECT * FROM switchyard_quota_lease($1, $2, 'alive', 10, 6, 6, 30)", scope, period
    )
    assert row["granted"] == 6 and row["remaining"] == 0
