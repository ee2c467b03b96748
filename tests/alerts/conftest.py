"""Alert fixtures: a database of their own (other tests' budgets must not raise alerts here, nor
these tests' webhooks receive theirs) and a real HTTP receiver that fails, hangs and comes back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from aiohttp import web

from service.alerts import webhooks
from tests.support import acreate_tenant_with_key

PERIOD = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def alerts_db(postgres):
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
async def pool(alerts_db):
    p = await asyncpg.create_pool(alerts_db, min_size=1, max_size=4)
    yield p
    await p.close()


@dataclass
class Received:
    """A request as it arrived (in arrival order); `status` is set once it is answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """A webhook receiver on a real socket. `mode`: ok (204), fail (500), hang (answers after
    `hang_seconds`), flaky (fails where `flaky(request)` says so); `stop()` makes it unreachable."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.hang_seconds = 5.0
        self.delay_seconds = 0.0
        self.flaky = lambda headers: False
        self.received: list[Received] = []
        self.inflight: Counter[str] = Counter()
        self.max_inflight_per_delivery = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        delivery = headers.get("Switchyard-Delivery-Id", "")
        self.inflight[delivery] += 1
        self.max_inflight_per_delivery = max(self.max_inflight_per_delivery, self.inflight[delivery])
        record = Received(request.path, headers, body)
        self.received.append(record)
        try:
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            if self.mode == "hang":
                await asyncio.sleep(self.hang_seconds)
            failing = self.mode == "fail" or (self.mode == "flaky" and self.flaky(headers))
            record.status = 500 if failing else 204
            if failing:
                return web.Response(status=500, text="receiver is having a bad day")
            return web.Response(status=204)
        finally:
            self.inflight[delivery] -= 1

    def accepted(self, path: str | None = None) -> list[Received]:
        return [r for r in self.received if r.status == 204 and (path is None or r.path == path)]


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


async def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@dataclass
class BudgetSetup:
    tenant_id: uuid.UUID
    budget_id: uuid.UUID
    secret: str | None

    @property
    def scope(self) -> str:
        return f"budget:{self.budget_id}"


async def make_budget(conn: asyncpg.Connection, database_url: str, limit: str = "10", *, hard: bool = True,
                      webhook_url: str | None = None) -> BudgetSetup:
    """A tenant with a monthly budget and, when given, a webhook (its secret returned)."""
    tenant = await acreate_tenant_with_key(database_url)
    budget_id = uuid.uuid4()
    await conn.execute("INSERT INTO budgets (id, tenant_id, period, limit_usd, hard) VALUES ($1, $2, 'month', $3, $4)",
                       budget_id, tenant.tenant_id, Decimal(limit), hard)
    secret = None
    if webhook_url is not None:
        _, secret, _ = await webhooks.put_webhook(conn, tenant.tenant_id, webhook_url)
    return BudgetSetup(tenant.tenant_id, budget_id, secret)


async def settle(conn: asyncpg.Connection, scope: str, used: str, period: datetime = PERIOD) -> Decimal:
    """Spend reaching the counter the way QuotaLeaser.flush sends it."""
    return await conn.fetchval("SELECT switchyard_quota_settle($1, $2, 'test-holder', $3, 0, 30)",
                               scope, period, Decimal(used))
