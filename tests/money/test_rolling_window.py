"""Rolling-window budgets against real Postgres: leases into hourly buckets never let any window pass
its limit, whatever order holders lease, settle and release in, and whichever bucket they lease into."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
from hypothesis import given, settings
from hypothesis import strategies as st

from service.auth.principal import BudgetRule, Principal
from service.metering import budget_records
from service.metering.admission import Admission, Admitter
from service.metering.quota import QuotaLeaser

LIMIT = Decimal("1.00")
WINDOW_HOURS = 3
BASE = datetime(2026, 11, 2, 8, tzinfo=UTC)
BUCKETS = [BASE + timedelta(hours=h) for h in range(7)]
HOLDERS = ("a", "b", "c")
_LEASE = "SELECT granted, remaining FROM switchyard_quota_lease_window($1, $2, $3, $4, $5, $6, 30, $7)"


async def _amounts(conn: asyncpg.Connection, scope: str) -> dict[datetime, Decimal]:
    """used + leased per bucket."""
    rows = await conn.fetch(
        "SELECT period_start, sum(amount) AS amount FROM ("
        " SELECT period_start, used AS amount FROM quota_counters WHERE scope = $1"
        " UNION ALL SELECT period_start, granted FROM quota_leases WHERE scope = $1) x GROUP BY 1", scope)
    return {r["period_start"]: r["amount"] for r in rows}


def _window_sums(amounts: dict[datetime, Decimal]) -> dict[datetime, Decimal]:
    width = timedelta(hours=WINDOW_HOURS)
    return {end: sum((a for b, a in amounts.items() if end - width < b <= end), Decimal(0)) for end in BUCKETS}


_OPS = st.lists(st.tuples(
    st.sampled_from(("lease", "lease", "settle")),
    st.sampled_from(HOLDERS),
    st.integers(0, len(BUCKETS) - 1),
    st.decimals(Decimal("0.01"), Decimal("0.6"), places=2),
    st.decimals(Decimal(0), Decimal(1), places=2),
), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None)
@given(_OPS)
def test_no_window_ever_passes_its_limit(database_url, ops):
    scope = f"budget:rolling-{uuid.uuid4().hex}"
    window = timedelta(hours=WINDOW_HOURS)

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        held: dict[tuple[str, datetime], Decimal] = {}
        try:
            for op, holder, b, amount, fraction in ops:
                bucket = BUCKETS[b]
                if op == "lease":
                    before = _window_sums(await _amounts(conn, scope))
                    row = await conn.fetchrow(_LEASE, scope, bucket, holder, LIMIT, amount, amount, window)
                    containing = [end for end in BUCKETS if bucket <= end < bucket + window]
                    fits = all(before[end] + amount <= LIMIT for end in containing)
                    # Granted exactly when every window containing the bucket has room: never
                    # past the limit, and never refused for nothing.
                    assert (row["granted"] > 0) == fits
                    if fits:
                        assert row["granted"] == amount
                        held[(holder, bucket)] = held.get((holder, bucket), Decimal(0)) + amount
                else:
                    lease = held.get((holder, bucket), Decimal(0))
                    used = (lease * fraction).quantize(Decimal("0.01"))
                    await conn.execute("SELECT switchyard_quota_settle($1, $2, $3, $4, $5, 30)",
                                       scope, bucket, holder, used, lease - used)
                    held[(holder, bucket)] = Decimal(0)
                sums = _window_sums(await _amounts(conn, scope))
                assert all(total <= LIMIT for total in sums.values()), sums
        finally:
            await conn.close()

    asyncio.run(run())


async def test_a_late_reservation_in_an_older_bucket_cannot_pass_the_current_window(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    leaser = QuotaLeaser(lambda: pool)
    admitter = Admitter(leaser)
    rule = BudgetRule(uuid.uuid4(), None, "rolling", LIMIT, True, window_hours=2)
    principal = Principal(tenant_id=uuid.uuid4(), tenant_name="t", key_id=uuid.uuid4(), key_prefix="sk-sy-test",
                          markup=Decimal(0), allowed_models=None, denied_front_ends=frozenset(), budgets=(rule,))
    try:
        at = datetime(2026, 11, 2, 10, 30, tzinfo=UTC)
        early, late = Admission(now=at), Admission(now=at + timedelta(hours=1))
        assert await admitter.cover(early, principal, Decimal("0.6"))  # bucket 10:00
        assert await admitter.cover(late, principal, Decimal("0.4"))  # bucket 11:00: the window 10-12 is full
        # A request admitted at 10:59 falls back after 11:00: its hold is still in bucket 10:00, and
        # the window ending at 11:00 has no room, though the one ending at 10:00 alone would.
        straggler = Admission(now=at + timedelta(minutes=29))
        assert not await admitter.cover(straggler, principal, Decimal("0.1"))
        assert "the tenant's rolling 2-hour $1.00" in admitter.refusal(principal, Decimal("0.1"), straggler).message
        # Two hours on, the 10:00 bucket has left the window: its spend no longer counts.
        later = Admission(now=at + timedelta(hours=2))
        assert await admitter.cover(later, principal, Decimal("0.6"))
        assert not await admitter.cover(Admission(now=at + timedelta(hours=2)), principal, Decimal("0.01"))
        for admission, billed in ((early, "0.6"), (late, "0.4"), (later, "0.6")):
            admitter.settle(admission, Decimal(billed), 0)
        admitter.release(straggler)
        await leaser.flush(release_all=True)
        used = await pool.fetch("SELECT period_start, used FROM quota_counters WHERE scope = $1 ORDER BY 1",
                                f"budget:{rule.id}")
        assert [(r["period_start"].hour, r["used"]) for r in used] == [
            (10, Decimal("0.6")), (11, Decimal("0.4")), (12, Decimal("0.6"))]
    finally:
        await pool.close()


async def test_a_rolling_budget_lists_the_spend_of_its_window_only(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        tenant_id = await conn.fetchval("INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id",
                                        uuid.uuid4(), f"roll-{uuid.uuid4().hex[:8]}")
        now = datetime(2026, 11, 2, 15, 20, tzinfo=UTC)
        budget, created = await budget_records.upsert_budget(conn, tenant_id, period="rolling", window_hours=3,
                                                             limit_usd=Decimal(5), now=now)
        assert created and budget.window_hours == 3
        scope = f"budget:{budget.id}"
        for hour, used in ((12, "1"), (13, "0.25"), (14, "0.5"), (15, "0.125")):
            await conn.execute("INSERT INTO quota_counters (scope, period_start, used) VALUES ($1, $2, $3)",
                               scope, now.replace(hour=hour, minute=0), Decimal(used))
        await conn.execute("INSERT INTO quota_leases (scope, period_start, holder, granted, expires_at)"
                           " VALUES ($1, $2, 'h', 0.0625, now() + interval '30 s')", scope, now.replace(minute=0))
        (listed,) = await budget_records.list_budgets(conn, tenant_id, now=now)
        assert listed.current_period_start == now.replace(hour=13, minute=0)
        assert listed.spent_usd == Decimal("0.875") and listed.leased_usd == Decimal("0.0625")
        again, created = await budget_records.upsert_budget(conn, tenant_id, period="rolling", window_hours=3,
                                                            limit_usd=Decimal(6), now=now)
        assert not created and again.id == budget.id and again.limit_usd == 6
        other, created = await budget_records.upsert_budget(conn, tenant_id, period="rolling", window_hours=24,
                                                            limit_usd=Decimal(9), now=now)
        assert created and other.id != budget.id  # another window length is another budget
    finally:
        await conn.close()
