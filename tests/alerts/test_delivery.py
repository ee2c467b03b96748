"""Delivery workers against a real HTTP receiver that is down, fails, hangs and comes back."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict

import asyncpg
import orjson

from service.alerts import outbox, webhooks
from service.alerts.delivery import AlertDispatcher, retry_delay
from service.alerts.signing import verify
from service.settings import AlertSettings
from tests.alerts.conftest import BudgetSetup, Receiver, make_budget, settle, wait_until

FAST = AlertSettings(allow_private_urls=True, timeout_seconds=0.5, retry_base_seconds=0.05, retry_max_seconds=0.3,
                     max_age_seconds=120, poll_seconds=0.05)


async def budgets_with_events(pool: asyncpg.Pool, database_url: str, url: str, n: int) -> list[BudgetSetup]:
    """n tenants, each with a webhook at `url` and one budget whose spend raised 50 and 80 %."""
    made = []
    async with pool.acquire() as conn:
        for _ in range(n):
            b = await make_budget(conn, database_url, "10", webhook_url=url)
            await settle(conn, b.scope, "8")
            made.append(b)
    return made


async def deliveries(pool: asyncpg.Pool, tenants: list[uuid.UUID]) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT d.*, e.tenant_id FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id "
            "WHERE e.tenant_id = ANY($1::uuid[])", tenants)


def all_delivered(pool, tenants, count):
    async def check() -> bool:
        rows = await deliveries(pool, tenants)
        return len(rows) == count and all(r["status"] == "delivered" for r in rows)
    return check


def check_every_request(receiver: Receiver, setups: list[BudgetSetup]) -> dict[str, list]:
    """Every request the receiver saw is signed with its tenant's secret and carries the event's
    id as its idempotency key, with the same body on every attempt. Returns requests by event."""
    secrets = {str(b.tenant_id): b.secret for b in setups}
    by_event: dict[str, list] = defaultdict(list)
    for r in receiver.received:
        event = orjson.loads(r.body)
        assert verify(secrets[event["tenant_id"]], r.headers["Switchyard-Signature"], r.body)
        assert r.headers["Idempotency-Key"] == event["id"] == r.headers["Switchyard-Event-Id"]
        assert r.headers["Switchyard-Event-Type"] == event["type"] == "budget.threshold"
        by_event[event["id"]].append(r)
    for requests in by_event.values():
        assert len({r.body for r in requests}) == 1
        attempts = [int(r.headers["Switchyard-Delivery-Attempt"]) for r in requests]
        assert attempts == sorted(attempts) and len(set(attempts)) == len(attempts)
    return by_event


async def test_down_failing_hanging_then_back_every_event_arrives(pool, alerts_db):
    receiver = Receiver()
    await receiver.start()
    url = receiver.url + "/hooks/tenant"
    await receiver.stop()  # nothing listens on the port at first
    setups = await budgets_with_events(pool, alerts_db, url, 4)
    tenants = [b.tenant_id for b in setups]
    worker = AlertDispatcher(lambda: pool, FAST, holder="worker-a")
    worker.start()
    try:
        async def attempts_at_least(n: int) -> bool:
            return all(r["attempts"] >= n for r in await deliveries(pool, tenants))

        await wait_until(lambda: attempts_at_least(2))
        await receiver.start()  # back on the same port, failing
        receiver.mode = "fail"
        await wait_until(lambda: len(receiver.received) >= 8)
        receiver.mode, receiver.hang_seconds = "hang", 2.0  # answers long after the 0.5 s limit
        seen = len(receiver.received)
        await wait_until(lambda: len(receiver.received) >= seen + 8)
        receiver.mode = "ok"
        await wait_until(all_delivered(pool, tenants, 8), timeout=20)
    finally:
        await worker.stop()
        await receiver.stop()
    by_event = check_every_request(receiver, setups)
    assert len(by_event) == 8
    assert all(any(r.status == 204 for r in requests) for requests in by_event.values())
    async with pool.acquire() as conn:
        event = await outbox.get_event(conn, uuid.UUID(next(iter(by_event))))
    delivery = event["deliveries"][0]
    assert event["status"] == "delivered" and delivery["status"] == "delivered"
    errors = " | ".join(a["error"] or "" for a in delivery["attempt_log"])
    assert "ClientConnector" in errors and "HTTP 500" in errors and "no answer within 0.5 s" in errors
    assert delivery["attempt_log"][-1]["status_code"] == 204 and delivery["attempts"] == len(delivery["attempt_log"])


async def test_a_restart_mid_delivery_loses_nothing(pool, alerts_db, receiver):
    slow = AlertSettings(allow_private_urls=True, timeout_seconds=1.5, retry_base_seconds=0.05,
                         retry_max_seconds=0.3, max_age_seconds=120, poll_seconds=0.05)
    receiver.mode, receiver.hang_seconds = "hang", 30.0
    setups = await budgets_with_events(pool, alerts_db, receiver.url + "/restart", 3)
    tenants = [b.tenant_id for b in setups]
    first = AlertDispatcher(lambda: pool, slow, holder="before-restart", stop_grace=0.1)
    first.start()
    await wait_until(lambda: sum(receiver.inflight.values()) == 6)  # every delivery is mid-request
    await first.stop()  # the process goes away with six attempts unanswered
    receiver.mode = "ok"
    second_pool = await asyncpg.create_pool(alerts_db, min_size=1, max_size=4)
    second = AlertDispatcher(lambda: second_pool, slow, holder="after-restart")
    second.start()
    try:
        await wait_until(all_delivered(pool, tenants, 6), timeout=20)
    finally:
        await second.stop()
        await second_pool.close()
    by_event = check_every_request(receiver, setups)
    assert len(by_event) == 6 and all(len(r) == 1 for r in receiver_accepted_by_event(receiver).values())
    async with pool.acquire() as conn:
        log = await conn.fetch(
            "SELECT a.attempt, a.holder, a.error FROM alert_delivery_attempts a JOIN alert_deliveries d "
            "ON d.id = a.delivery_id JOIN alert_events e ON e.id = d.event_id WHERE e.tenant_id = ANY($1::uuid[]) "
            "ORDER BY a.attempt", tenants)
    assert [(r["attempt"], r["holder"]) for r in log] == [(1, "before-restart")] * 6 + [(2, "after-restart")] * 6
    # The first process never answered for its attempts; the claim that took them over says so.
    assert all("lease ran out" in r["error"] for r in log if r["holder"] == "before-restart")


def receiver_accepted_by_event(receiver: Receiver) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for r in receiver.accepted():
        out[r.headers["Idempotency-Key"]].append(r)
    return out


async def test_two_workers_never_send_the_same_attempt(pool, alerts_db, receiver):
    rng = random.Random(7)
    receiver.mode, receiver.delay_seconds = "flaky", 0.02
    receiver.flaky = lambda headers: rng.random() < 0.4
    setups = await budgets_with_events(pool, alerts_db, receiver.url + "/pair", 20)
    tenants = [b.tenant_id for b in setups]
    pools = [await asyncpg.create_pool(alerts_db, min_size=1, max_size=4) for _ in range(2)]
    workers = [AlertDispatcher(lambda p=p: p, FAST, holder=f"gateway-{i}", concurrency=4) for i, p in enumerate(pools)]
    for w in workers:
        w.start()
    try:
        await wait_until(all_delivered(pool, tenants, 40), timeout=30)
    finally:
        for w in workers:
            await w.stop()
        for p in pools:
            await p.close()
    check_every_request(receiver, setups)
    sent = [(r.headers["Switchyard-Delivery-Id"], r.headers["Switchyard-Delivery-Attempt"]) for r in receiver.received]
    assert len(sent) == len(set(sent)) > 40  # some failed and were retried; no attempt went out twice
    assert receiver.max_inflight_per_delivery == 1
    async with pool.acquire() as conn:
        holders = await conn.fetch(
            "SELECT a.holder, count(*) FROM alert_delivery_attempts a JOIN alert_deliveries d ON d.id = a.delivery_id "
            "JOIN alert_events e ON e.id = d.event_id WHERE e.tenant_id = ANY($1::uuid[]) GROUP BY 1", tenants)
    assert {r["holder"] for r in holders} == {"gateway-0", "gateway-1"}
    assert sum(r["count"] for r in holders) == len(sent)


async def test_past_its_age_a_delivery_is_failed_and_still_listed(pool, alerts_db, receiver):
    receiver.mode = "fail"
    short = AlertSettings(allow_private_urls=True, timeout_seconds=0.5, retry_base_seconds=0.05,
                          retry_max_seconds=0.2, max_age_seconds=1.0, poll_seconds=0.05)
    setups = await budgets_with_events(pool, alerts_db, receiver.url + "/old", 1)
    tenant = setups[0].tenant_id
    worker = AlertDispatcher(lambda: pool, short)
    worker.start()
    try:
        async def failed() -> bool:
            rows = await deliveries(pool, [tenant])
            return len(rows) == 2 and all(r["status"] == "failed" for r in rows)
        await wait_until(failed, timeout=10)
        attempts = sum(r["attempts"] for r in await deliveries(pool, [tenant]))
        await asyncio.sleep(0.3)
        assert sum(r["attempts"] for r in await deliveries(pool, [tenant])) == attempts  # given up
    finally:
        await worker.stop()
    async with pool.acquire() as conn:
        listed = await outbox.list_events(conn, tenant_id=tenant, status="failed")
    assert len(listed) == 2 and all(e["status"] == "failed" for e in listed), listed
    for event in listed:
        (delivery,) = event["deliveries"]
        assert delivery["attempts"] >= 3 and delivery["last_status_code"] == 500
        assert "HTTP 500" in delivery["last_error"] and delivery["next_attempt_at"] is None


async def test_internal_tenant_urls_are_refused_at_delivery_the_operators_is_not(pool, alerts_db, receiver):
    guarded = AlertSettings(allow_private_urls=False, timeout_seconds=0.5, retry_base_seconds=0.05,
                            retry_max_seconds=0.2, max_age_seconds=120, poll_seconds=0.05)
    async with pool.acquire() as conn:
        literal = await make_budget(conn, alerts_db, "10", webhook_url=receiver.url + "/tenant")
        named = await make_budget(conn, alerts_db, "10", webhook_url=f"http://localhost:{receiver.port}/tenant")
        operator, operator_secret, _ = await webhooks.put_webhook(conn, None, receiver.url + "/operator")
        try:
            for b in (literal, named):
                await settle(conn, b.scope, "5")
            worker = AlertDispatcher(lambda: pool, guarded)
            worker.start()
            try:
                async def tenant_attempted_twice() -> bool:
                    rows = await deliveries(pool, [literal.tenant_id, named.tenant_id])
                    return all(r["attempts"] >= 2 for r in rows if r["target"] == "tenant")
                await wait_until(lambda: len(receiver.accepted("/operator")) == 2)
                await wait_until(tenant_attempted_twice)
            finally:
                await worker.stop()
        finally:
            await webhooks.delete_webhook(conn, None)
    assert receiver.accepted("/tenant") == [] and all(r.path == "/operator" for r in receiver.received)
    for r in receiver.received:
        assert verify(operator_secret, r.headers["Switchyard-Signature"], r.body)
    rows = {(r["tenant_id"], r["target"]): r for r in await deliveries(pool, [literal.tenant_id, named.tenant_id])}
    assert "internal address" in rows[(literal.tenant_id, "tenant")]["last_error"]
    assert "internal addresses" in rows[(named.tenant_id, "tenant")]["last_error"]
    assert operator.tenant_id is None


def test_retry_steps_double_up_to_the_cap_with_jitter():
    rng = random.Random(1)
    for attempt, step in ((1, 5), (2, 10), (3, 20), (8, 640), (20, 3600), (500, 3600)):
        delays = [retry_delay(attempt, 5, 3600, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # spread, not a fixed schedule
