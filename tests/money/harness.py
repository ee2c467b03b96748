"""A gateway assembled from its real parts (planner, capacity, health, metrics, price book, admitter
over a real Postgres lease table) around adapters that fail on command at any await point."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from service.auth.principal import BudgetRule, Principal
from service.catalog.loader import load_catalog
from service.catalog.model import Route
from service.chat.validate import validate_chat_request
from service.gateway.attempt import AttemptFactory, FinishedAttempt
from service.gateway.context import RequestContext
from service.gateway.observers import CalibrationObserver, HealthObserver, MetricsObserver
from service.gateway.relay import ChatEncoder
from service.gateway.request import Gateway
from service.metering.admission import Admitter
from service.metering.events import UsageEvent
from service.metering.pricing import PriceBook
from service.metering.quota import QuotaLeaser
from service.observability.metrics import Metrics
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.state import RoutingState
from service.settings import Settings
from service.upstreams.base import Completion, Evidence, Usage

MODEL = "openai/gpt-oss-120b"


class Boom(Exception):
    """A bug somewhere below the gateway: not an UpstreamError."""


@dataclass
class Fault:
    """Raise `exc` at the `at`-th await point of the first call on `front_end`."""

    front_end: str
    at: int
    exc: BaseException
    fired: bool = False


class FaultyAdapter:
    """A front end whose calls pass `points` await points, then answer (or stream `chunks`)."""

    def __init__(self, front_end: str, fault: Fault | None, *, points: int = 3, chunks: int = 5) -> None:
        self.front_end = front_end
        self.fault = fault
        self.points = points
        self.chunks = chunks
        self.calls = 0

    async def checkpoint(self, index: int) -> None:
        await asyncio.sleep(0)
        f = self.fault
        if f is not None and not f.fired and f.front_end == self.front_end and f.at == index:
            f.fired = True
            raise f.exc

    def _body(self, route: Route) -> dict[str, Any]:
        return {"id": f"chatcmpl-{self.front_end}", "object": "chat.completion", "created": 1, "model": route.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello there"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}

    async def complete(self, route: Route, body: dict[str, Any], *, key: int = 0) -> Completion:
        self.calls += 1
        for i in range(self.points):
            await self.checkpoint(i)
        return Completion(self._body(route), Evidence(usage=Usage(12, 3), finish_reason="stop"))

    async def stream(self, route: Route, body: dict[str, Any], *, key: int = 0) -> FaultyStream:
        self.calls += 1
        for i in range(self.points):
            await self.checkpoint(i)
        return FaultyStream(self, route)

    async def aclose(self) -> None:
        return None


class FaultyStream:
    def __init__(self, adapter: FaultyAdapter, route: Route) -> None:
        self.adapter = adapter
        self.route = route
        self._evidence = Evidence()
        self.closed = False

    @property
    def evidence(self) -> Evidence:
        return self._evidence

    def buffered(self) -> int:
        return 0

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        n = self.adapter.chunks
        for i in range(n):
            # Stream await points are numbered after the opening ones.
            await self.adapter.checkpoint(self.adapter.points + i)
            last = i == n - 1
            self._evidence.usage = Usage(12, i + 1)
            yield {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": self.route.model,
                   "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": "stop" if last else None}],
                   "usage": {"prompt_tokens": 12, "completion_tokens": i + 1, "total_tokens": 13 + i}}
        self._evidence.finish_reason = "stop"

    async def aclose(self) -> None:
        self.closed = True


class ListSink:
    def __init__(self) -> None:
        self.events: list[UsageEvent] = []

    def submit(self, event: UsageEvent) -> None:
        self.events.append(event)

    async def durable(self) -> None:
        """In memory: nothing to wait for."""


class RaisingObserver:
    def attempt_ended(self, finished: FinishedAttempt) -> None:
        raise RuntimeError("an observer that breaks must not lose the row")


@dataclass
class Assembly:
    gateway: Gateway
    sink: ListSink
    capacity: CapacityBoard
    health: HealthBoard
    metrics: Metrics
    leaser: QuotaLeaser
    adapters: dict[str, FaultyAdapter]
    pool: asyncpg.Pool
    principal: Principal
    contexts: list[RequestContext] = field(default_factory=list)

    def context(self, stream: bool) -> RequestContext:
        ctx = RequestContext(request_id=f"req_{uuid.uuid4().hex}", principal=self.principal,
                             requested_model=MODEL, stream=stream)
        self.contexts.append(ctx)
        return ctx

    def inflight_gauges(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for metric in self.metrics.route_inflight.collect():
            for sample in metric.samples:
                out[sample.labels["route"]] = sample.value
        return out


async def assemble(database_url: str, fault: Fault | None, *, markup: str = "0",
                   budget: str | None = "100") -> Assembly:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    settings = Settings(database_url=database_url, max_attempts=3)
    metrics = Metrics()
    health = HealthBoard()
    capacity = CapacityBoard()
    capacity.configure("xpay", 60, 10)
    calibration = Calibration()
    routing = RoutingState(load_catalog(), health=health, capacity=capacity, calibration=calibration,
                           enabled_front_ends=frozenset({"baseten", "xpay"}))
    sink = ListSink()
    prices = PriceBook()
    leaser = QuotaLeaser(lambda: pool)
    admitter = Admitter(leaser, metrics=metrics)
    attempts = AttemptFactory(capacity=capacity, prices=prices, ledger=sink, catalog=routing,
                              observers=[HealthObserver(health), MetricsObserver(metrics),
                                         CalibrationObserver(calibration), RaisingObserver()])
    adapters = {fe: FaultyAdapter(fe, fault) for fe in ("baseten", "xpay")}
    gateway = Gateway(settings=settings, routing=routing, adapters=adapters, quoter=None, admitter=admitter,
                      attempts=attempts, prices=prices, metrics=metrics)
    budgets = () if budget is None else (BudgetRule(uuid.uuid4(), None, "day", Decimal(budget), True),)
    principal = Principal(tenant_id=uuid.uuid4(), tenant_name="t", key_id=uuid.uuid4(), key_prefix="sk-sy-test",
                          markup=Decimal(markup), allowed_models=None, denied_front_ends=frozenset(),
                          budgets=budgets)
    return Assembly(gateway, sink, capacity, health, metrics, leaser, adapters, pool, principal)


def chat_body(stream: bool, **extra: Any) -> tuple[dict[str, Any], Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hello " * 400}]}
    body.update(extra)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, validate_chat_request(body)


def encoder(body: dict[str, Any]) -> ChatEncoder:
    return ChatEncoder.for_body(body)
