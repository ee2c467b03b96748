"""The attempt seam: one upstream call on one route, from the slot it takes to its one usage row.

`AttemptFactory.begin()` takes what an attempt holds (a capacity slot, a half-open circuit's probe,
an in-flight count). Whichever way the attempt ends -- an answer, an upstream error, any other
exception, cancellation, the client gone, or the attempt object simply dropped -- `end()` runs
exactly once: it releases what was taken, has the price book decide the cost of record, queues
exactly one usage event and tells the observers (health, metrics, calibration), which read the
finished attempt instead of being called from the request flow.

Use it as `async with attempt:` around the upstream call; a stream's relay ends it explicitly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

import structlog

from service.catalog.model import Catalog, Route
from service.errors import ErrorKind, UpstreamError
from service.gateway.context import RequestContext, utcnow
from service.metering.events import UsageEvent
from service.metering.pricing import CostOfRecord, PriceBook
from service.routing.capacity import CapacityBoard, Slot
from service.routing.needs import Needs
from service.routing.plan import Candidate
from service.routing.planner import capacity_group
from service.upstreams.base import Evidence, Usage

log = structlog.get_logger("switchyard.attempt")

OK, ERROR, CANCELLED = "ok", "error", "cancelled"


@dataclass(frozen=True, slots=True)
class FinishedAttempt:
    """Everything an observer may want to know about an attempt that has ended."""

    route: Route
    candidate: Candidate
    number: int
    status: str  # ok | error | cancelled
    kind: ErrorKind | None
    error: BaseException | None
    evidence: Evidence
    cost: CostOfRecord
    event: UsageEvent
    latency: float
    ttft: float | None
    needs: Needs  # what the request asked for: its prompt estimate, output cap, reasoning effort
    tenant_key: object

    @property
    def base_prompt_tokens(self) -> int:
        return self.needs.base_prompt_tokens


class AttemptObserver(Protocol):
    def attempt_ended(self, finished: FinishedAttempt) -> None: ...


class UsageSink(Protocol):
    def submit(self, event: UsageEvent) -> None: ...

    async def durable(self) -> None:
        """Returns once every row submitted so far is on disk: awaited before an answer's last byte."""
        ...


class CatalogSource(Protocol):
    @property
    def catalog(self) -> Catalog: ...


class AttemptFactory:
    """Begins attempts; holds what every attempt needs to end well."""

    def __init__(self, *, capacity: CapacityBoard, prices: PriceBook, ledger: UsageSink,
                 catalog: CatalogSource, observers: Sequence[AttemptObserver]) -> None:
        self.capacity = capacity
        self.prices = prices
        self.ledger = ledger
        self.catalog = catalog
        self.observers = tuple(observers)

    def begin(self, ctx: RequestContext, candidate: Candidate, needs: Needs) -> Attempt | None:
        """An attempt holding its slot, or None when the route filled up since planning."""
        slot = self.capacity.acquire_slot(capacity_group(candidate.route), candidate.route.name)
        if slot is None:
            return None
        ctx.attempts += 1
        attempt = Attempt(self, ctx, candidate, ctx.attempts, needs, slot)
        for observer in self.observers:
            began = getattr(observer, "attempt_began", None)
            if began is not None:
                began(attempt.route)
        return attempt


class Attempt:
    """One upstream call. `end()` is idempotent: the first call decides, later ones return it."""

    __slots__ = (
        "__weakref__",
        "_factory",
        "_needs",
        "_t0",
        "answer_estimate",
        "candidate",
        "ctx",
        "evidence",
        "finished",
        "first_token_at",
        "first_token_t",
        "number",
        "quote",
        "route",
        "slot",
        "started_at",
    )

    def __init__(self, factory: AttemptFactory, ctx: RequestContext, candidate: Candidate, number: int,
                 needs: Needs, slot: Slot) -> None:
        self._factory = factory
        self.ctx = ctx
        self.candidate = candidate
        self.route: Route = candidate.route
        self.number = number
        self._needs = needs
        self.slot = slot  # the capacity it holds, and which of the front end's keys that is
        self.started_at = utcnow()
        self._t0 = time.perf_counter()
        self.first_token_at: datetime | None = None
        self.first_token_t: float | None = None
        # What the upstream reported so far; a stream's relay keeps it current.
        self.evidence = Evidence()
        # Tokens to record for an answered call whose upstream reported none.
        self.answer_estimate: int | None = None
        self.quote = candidate.quote
        self.finished: FinishedAttempt | None = None

    @property
    def t0(self) -> float:
        return self._t0

    def mark_first_token(self) -> float:
        """Records the first token's moment (once); returns it."""
        if self.first_token_t is None:
            self.first_token_t = time.perf_counter()
            self.first_token_at = utcnow()
        return self.first_token_t

    # ---- the ways out ---------------------------------------------------------------------------
    def succeed(self, evidence: Evidence) -> FinishedAttempt:
        return self.end(OK, None, evidence=evidence)

    def fail(self, err: UpstreamError) -> FinishedAttempt:
        return self.end(ERROR, err.kind, evidence=err.evidence, error=err)

    def abandon(self, exc: BaseException | None) -> FinishedAttempt:
        """Ended by something other than the upstream: the client gone, cancellation, or a bug."""
        if isinstance(exc, UpstreamError):
            return self.fail(exc)
        if exc is None or isinstance(exc, (asyncio.CancelledError, GeneratorExit)) or self.ctx.client_disconnected:
            self.ctx.client_disconnected = True
            return self.end(CANCELLED, ErrorKind.CLIENT_GONE, error=exc)
        log.error("attempt_internal_error", route=self.route.name, request_id=self.ctx.request_id,
                  error=type(exc).__name__, exc_info=exc)
        return self.end(ERROR, ErrorKind.INTERNAL, error=exc)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.finished is None:
            if exc is None:
                self.end(OK, None)
            else:
                self.abandon(exc)

    def __del__(self) -> None:
        # A last resort for an attempt dropped without ending (a stream never iterated): its slot
        # and its row must not be lost with it.
        if getattr(self, "finished", None) is None and hasattr(self, "_factory"):
            try:
                log.error("attempt_dropped_unended", route=self.route.name, request_id=self.ctx.request_id)
                self.end(CANCELLED, ErrorKind.CLIENT_GONE)
            except Exception:  # noqa: BLE001, S110 - never raise from a finalizer
                pass

    def end(self, status: str, kind: ErrorKind | None, *, evidence: Evidence | None = None,
            error: BaseException | None = None) -> FinishedAttempt:
        if self.finished is not None:
            return self.finished
        f, ctx, route = self._factory, self.ctx, self.route
        # Release first: nothing below may leave the slot taken.
        f.capacity.release_slot(self.slot)
        latency = time.perf_counter() - self._t0
        ctx.upstream_seconds += latency
        if evidence is not None:
            evidence.merge_from(self.evidence)
            self.evidence = evidence
        ev = self.evidence
        answered = status == OK
        estimate = Usage(prompt_tokens=self.candidate.prompt_tokens,
                         completion_tokens=self.answer_estimate if self.answer_estimate is not None
                         else self.candidate.expected_output)
        catalog = f.catalog.catalog
        cost = f.prices.cost_of_record(
            route, ev, markup=ctx.principal.markup, answered=answered, estimate=estimate,
            direct=catalog.find_route("baseten", route.model), quote=self.quote)
        usage = cost.usage
        http_status = error.upstream_status if isinstance(error, UpstreamError) else None
        event = UsageEvent(
            request_id=ctx.request_id, attempt=self.number, tenant_id=ctx.principal.tenant_id,
            key_id=ctx.principal.key_id, requested_model=ctx.requested_model, served_model=route.model,
            front_end=route.front_end, route=route.name, status=status,
            error_code=kind.value if kind is not None else None, http_status=http_status, stream=ctx.stream,
            client_disconnected=ctx.client_disconnected, prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens, completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens, provider_cost_usd=cost.provider_usd,
            billed_usd=cost.billed_usd, direct_billed_usd=cost.direct_billed_usd,
            price_version=catalog.version, cost_source=cost.source.value, estimated=cost.estimated,
            upstream_request_id=ev.upstream_request_id, started_at=self.started_at,
            first_token_at=self.first_token_at, ended_at=utcnow(), api=ctx.api,
            project_id=ctx.principal.project_id, end_user=ctx.end_user, tags=ctx.tags, metadata=ctx.metadata,
        )
        ctx.cost += cost.provider_usd
        ctx.billed += cost.billed_usd
        ttft = (self.first_token_t - self._t0) if self.first_token_t is not None else None
        finished = FinishedAttempt(
            route=route, candidate=self.candidate, number=self.number, status=status, kind=kind, error=error,
            evidence=ev, cost=cost, event=event, latency=latency, ttft=ttft,
            needs=self._needs, tenant_key=ctx.principal.tenant_id)
        self.finished = finished
        # The row first: an observer's failure must not lose it.
        f.ledger.submit(event)
        for observer in f.observers:
            try:
                observer.attempt_ended(finished)
            except Exception:
                log.exception("attempt_observer_failed", observer=type(observer).__name__)
        return finished
