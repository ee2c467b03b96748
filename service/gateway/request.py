"""One request end to end, whatever API the client spoke: plan, admit, attempt routes in order with
fallback, answer or relay, settle.

The inbound layer hands over a validated Chat Completions body and its view; it gets back either a
whole answer (a chat completion whose `usage.cost` is the request's billed total) or a relay that
streams through the inbound API's encoder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, overload

import structlog

from service.chat.validate import ChatRequestView
from service.errors import ErrorKind, GatewayError, UpstreamError
from service.gateway.attempt import Attempt, AttemptFactory, FinishedAttempt
from service.gateway.context import RequestContext
from service.gateway.relay import Relay, StreamEncoder, add_cost, strip_reasoning
from service.gateway.route_body import body_for_route
from service.metering.admission import Admitter
from service.metering.pricing import PriceBook
from service.observability.metrics import Metrics, status_class
from service.routing.estimate import completion_estimate, context_estimate
from service.routing.needs import Needs, derive_needs
from service.routing.no_route import no_route_error
from service.routing.plan import Candidate, Plan
from service.routing.planner import Planner, Policy
from service.settings import Settings
from service.upstreams.base import Adapter, ChunkStream, Completion, Quoter

log = structlog.get_logger("switchyard.request")


class PlannerSource(Protocol):
    @property
    def planner(self) -> Planner: ...


@dataclass(slots=True)
class Answer:
    body: dict[str, Any]
    headers: dict[str, str]


class Gateway:
    def __init__(self, *, settings: Settings, routing: PlannerSource, adapters: Mapping[str, Adapter],
                 quoter: Quoter | None, admitter: Admitter, attempts: AttemptFactory, prices: PriceBook,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.routing = routing
        self.adapters = adapters
        self.quoter = quoter
        self.admitter = admitter
        self.attempts = attempts
        self.prices = prices
        self.metrics = metrics

    # ---- planning -------------------------------------------------------------------------------
    async def plan(self, ctx: RequestContext, body: dict[str, Any], view: ChatRequestView, *,
                   serving: bool = True) -> tuple[Needs, Plan]:
        """`serving`: the plan is for a request about to run (it counts as demand for the scarce
        flat-fee calls); a quote's plan is not."""
        needs = derive_needs(body, view)
        p = ctx.principal
        policy = Policy(allowed_models=p.allowed_models, denied_front_ends=p.denied_front_ends, tenant=p.tenant_id)
        planner = self.routing.planner
        plan = planner.plan(view.model, needs, view.provider, policy, fallbacks=view.models,
                            count_demand=None if serving else False)
        quotes = await self._quotes(planner, plan, body)
        if quotes:
            plan = planner.plan(view.model, needs, view.provider, policy, fallbacks=view.models, quotes=quotes,
                                count_demand=None if serving else False)
        return needs, plan

    async def _quotes(self, planner: Planner, plan: Plan, body: dict[str, Any]) -> dict[str, Decimal]:
        """Orthogonal dry runs, only where a quote can change the choice: a quoted route that may
        be tried on an estimated price, or one whose quote is its only possible price."""
        if self.quoter is None:
            return {}
        catalog = planner.catalog
        routes = [c.route for c in plan.candidates[: self.settings.max_attempts]
                  if c.cost_basis == "estimated_quote"]
        routes += [r for e in plan.excluded
                   if e.code == "price_unknown" and e.route.startswith("orthogonal:")
                   and (r := catalog.find_route("orthogonal", e.route.split(":", 1)[1])) is not None]
        if not routes:
            return {}
        started = time.perf_counter()
        quoted = await asyncio.gather(*(self.quoter.quote(r, {**body, "model": r.model}) for r in routes))
        self.metrics.quote_seconds.observe(time.perf_counter() - started)
        prices = {r.name: self.prices.quote_price(q) for r, q in zip(routes, quoted, strict=True) if q is not None}
        return {name: price for name, price in prices.items() if price is not None}

    # ---- entry points ---------------------------------------------------------------------------
    async def complete(self, ctx: RequestContext, body: dict[str, Any], view: ChatRequestView) -> Answer:
        needs, candidates = await self._admit(ctx, body, view)
        try:
            attempt, completion = await self._attempts(ctx, body, needs, candidates, stream=False)
            try:
                attempt.answer_estimate = _answer_tokens(completion.body)
                self._served(ctx, attempt.candidate)
                attempt.mark_first_token()
                finished = attempt.succeed(completion.evidence)
            except BaseException as exc:
                attempt.abandon(exc)
                raise
            ctx.prompt_tokens = finished.event.prompt_tokens
            ctx.completion_tokens = finished.event.completion_tokens
        except GatewayError:
            await self._durable_before_error(ctx)
            raise
        finally:
            self.settle(ctx)
        out = completion.body
        if view.exclude_reasoning:
            strip_reasoning(out)
        usage = out.get("usage")
        if isinstance(usage, dict):
            add_cost(usage, ctx.billed)
        answer = Answer(out, self.headers(ctx, cost=ctx.billed))
        # The request's usage rows reach the disk before any byte of its answer leaves (the journal
        # thread started on them when the attempt ended, so the work above overlaps the wait).
        await self.attempts.ledger.durable()
        return answer

    async def stream(self, ctx: RequestContext, body: dict[str, Any], view: ChatRequestView,
                     encoder: StreamEncoder) -> tuple[Relay, dict[str, str]]:
        """Routes are tried until one stream has produced its first event; only then do headers and
        bytes go to the client, so every failure before that can still fall back."""
        needs, candidates = await self._admit(ctx, body, view)
        try:
            attempt, upstream = await self._attempts(ctx, body, needs, candidates, stream=True)
        except BaseException as exc:
            self.settle(ctx)
            if isinstance(exc, GatewayError):
                await self._durable_before_error(ctx)
            raise
        self._served(ctx, attempt.candidate)
        relay = Relay(ctx, attempt, upstream, encoder, self._stream_ended, exclude_reasoning=view.exclude_reasoning,
                      durable=self.attempts.ledger.durable)
        return relay, self.headers(ctx)

    async def _durable_before_error(self, ctx: RequestContext) -> None:
        """An error answer ends the request as surely as an answer does, and a failed attempt may be
        charged (a marketplace's receipt): its rows reach the disk before the error is sent."""
        if ctx.attempts:
            await self.attempts.ledger.durable()

    def _stream_ended(self, ctx: RequestContext, finished: FinishedAttempt, upstream_share: float | None) -> None:
        ctx.prompt_tokens, ctx.completion_tokens = finished.event.prompt_tokens, finished.event.completion_tokens
        self.settle(ctx)
        self.finish(ctx, upstream_share)

    async def _admit(self, ctx: RequestContext, body: dict[str, Any],
                     view: ChatRequestView) -> tuple[Needs, list[Candidate]]:
        needs, plan = await self.plan(ctx, body, view)
        for excluded in plan.excluded:
            if excluded.code == "at_capacity":
                self.metrics.capacity_refusals.labels(excluded.route.split(":", 1)[0]).inc()
        if not plan.candidates:
            self.metrics.rejections.labels("no_route").inc()
            raise no_route_error(plan, self.routing.planner.catalog)
        worst_tokens = context_estimate(needs.base_prompt_tokens, 1.0) + needs.worst_output
        ctx.admission = await self.admitter.admit(ctx.principal, worst_tokens)
        ctx.extra_headers.update(ctx.admission.headers)
        return needs, plan.candidates[: self.settings.max_attempts]

    def settle(self, ctx: RequestContext) -> None:
        if ctx.admission is not None:
            self.admitter.settle(ctx.admission, ctx.billed, ctx.prompt_tokens + ctx.completion_tokens)
            if ctx.admission.soft_exceeded:
                ctx.soft_budget_exceeded = True

    # ---- attempts -------------------------------------------------------------------------------
    @overload
    async def _attempts(self, ctx: RequestContext, body: dict[str, Any], needs: Needs, candidates: list[Candidate],
                        *, stream: Literal[False]) -> tuple[Attempt, Completion]: ...
    @overload
    async def _attempts(self, ctx: RequestContext, body: dict[str, Any], needs: Needs, candidates: list[Candidate],
                        *, stream: Literal[True]) -> tuple[Attempt, ChunkStream]: ...

    async def _attempts(self, ctx: RequestContext, body: dict[str, Any], needs: Needs, candidates: list[Candidate],
                        *, stream: bool) -> tuple[Attempt, Completion | ChunkStream]:
        """Try routes in plan order until one answers; every attempt is metered, a retryable
        failure moves on to the next route, and no attempt starts that its budget cannot cover."""
        if ctx.admission is None:
            raise RuntimeError("attempts start only after the request was admitted")
        last: UpstreamError | None = None
        over_budget: Decimal | None = None
        deadline = time.monotonic() + self.settings.max_fallback_seconds
        markup = ctx.principal.markup
        for candidate in candidates:
            bound = self.prices.worst_billed(candidate.bound, markup)
            if not await self.admitter.cover(ctx.admission, ctx.principal, ctx.billed + bound):
                over_budget = bound if over_budget is None else min(over_budget, bound)
                continue
            ctx.extra_headers.update(ctx.admission.headers)
            attempt = self.attempts.begin(ctx, candidate, needs)
            if attempt is None:
                # Filled up between planning and now: not an attempt, just the next route.
                self.metrics.capacity_refusals.labels(candidate.route.front_end).inc()
                continue
            if attempt.number > 1:
                self.metrics.fallbacks.labels(candidate.route.front_end, "previous_failed").inc()
            adapter = self.adapters[candidate.route.front_end]
            try:
                route_body = body_for_route(body, candidate)
                answer: Completion | ChunkStream
                key = attempt.slot.key
                if stream:
                    answer = await adapter.stream(candidate.route, route_body, key=key)
                else:
                    answer = await adapter.complete(candidate.route, route_body, key=key)
            except Exception as exc:  # noqa: BLE001 - every failure ends the attempt; most fall back
                finished = attempt.abandon(exc)
                last = exc if isinstance(exc, UpstreamError) else UpstreamError(
                    ErrorKind.INTERNAL, f"internal error while calling the upstream ({type(exc).__name__})")
                retryable = last.retryable or (candidate.context_uncertain and _context_refusal(last))
                if finished.kind is None or not retryable or time.monotonic() >= deadline:
                    break
                continue
            except BaseException as exc:
                attempt.abandon(exc)
                raise
            return attempt, answer
        if last is None and over_budget is not None:
            self.metrics.rejections.labels("budget_exceeded").inc()
            raise self.admitter.refusal(ctx.principal, over_budget, ctx.admission)
        raise self._exhausted(ctx, last)

    def _served(self, ctx: RequestContext, candidate: Candidate) -> None:
        ctx.served_model = candidate.route.model
        ctx.route = candidate.route.name
        ctx.front_end = candidate.route.front_end

    def _exhausted(self, ctx: RequestContext, last: UpstreamError | None) -> GatewayError:
        if last is None:
            return GatewayError(503, "Every route for this request is at capacity; retry shortly.",
                                type="server_error", code="no_route_available", headers={"retry-after": "1"})
        err = last.to_client(route_name=None)
        ctx.error_code = last.kind.value
        err.headers = {**ctx.extra_headers, **err.headers}
        return err

    def headers(self, ctx: RequestContext, cost: Decimal | None = None) -> dict[str, str]:
        headers = {
            "x-switchyard-model": ctx.served_model or "",
            "x-switchyard-route": ctx.route or "",
            "x-switchyard-attempts": str(ctx.attempts),
        }
        if cost is not None:
            headers["x-switchyard-cost-usd"] = format(cost, "f")
        headers.update(ctx.extra_headers)
        return headers

    # ---- the request's one log line and metrics -------------------------------------------------
    def rejected(self, request_id: str, err: GatewayError, tenant_id: object = None) -> None:
        """A request refused before planning (authentication, body, validation): counted and logged."""
        m = self.metrics
        m.requests.labels("none", "none", status_class(err.status), "false").inc()
        m.rejections.labels(err.code or "invalid_request").inc()
        log.info("request_rejected", request_id=request_id, status=err.status, error_code=err.code,
                 param=err.param, tenant_id=str(tenant_id) if tenant_id else None)

    def finish(self, ctx: RequestContext, upstream_to_first_token: float | None = None) -> None:
        """Per-request metrics and the one log line; called once per request.

        For a stream that reached its first token, the overhead is what Switchyard added to the
        time to first token; the rest of a stream is the upstream's pace, not ours."""
        m = self.metrics
        elapsed = ctx.elapsed()
        model, fe, stream = ctx.served_model or "none", ctx.front_end or "none", "true" if ctx.stream else "false"
        m.requests.labels(model, fe, status_class(ctx.status), stream).inc()
        m.request_duration.labels(model, fe, stream).observe(elapsed)
        if ctx.ttft is not None:
            m.ttft.labels(model, fe).observe(ctx.ttft)
        if ctx.ttft is not None and upstream_to_first_token is not None:
            overhead = ctx.ttft - upstream_to_first_token
        else:
            overhead = elapsed - ctx.upstream_seconds
        m.overhead.labels(stream).observe(max(0.0, overhead))
        log.info(
            "request",
            request_id=ctx.request_id,
            tenant_id=str(ctx.principal.tenant_id),
            key_prefix=ctx.principal.key_prefix,
            api=ctx.api,
            requested_model=ctx.requested_model,
            served_model=ctx.served_model,
            route=ctx.route,
            attempts=ctx.attempts,
            status=ctx.status,
            error_code=ctx.error_code,
            stream=ctx.stream,
            prompt_tokens=ctx.prompt_tokens,
            completion_tokens=ctx.completion_tokens,
            cost_usd=format(ctx.cost, "f"),
            billed_usd=format(ctx.billed, "f"),
            duration_ms=round(elapsed * 1000, 2),
            ttft_ms=round(ctx.ttft * 1000, 2) if ctx.ttft is not None else None,
            client_disconnected=ctx.client_disconnected,
        )


_CONTEXT_WORDS = ("context length", "context window", "maximum context", "too long", "context_length")


def _context_refusal(err: UpstreamError) -> bool:
    """The upstream refused the prompt for its length: a route whose context only may have fitted was
    tried on its own check (service.routing.planner), and the next, larger route may fit."""
    if err.kind is not ErrorKind.INVALID_REQUEST:
        return False
    text = err.message.lower()
    return any(word in text for word in _CONTEXT_WORDS)


def _answer_tokens(body: dict[str, Any]) -> int:
    """The answer's tokens by the one estimator, for an upstream that reported no usage."""
    choices = body.get("choices")
    size = 0
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for key in ("content", "reasoning_content"):
            value = message.get(key)
            if isinstance(value, str):
                size += len(value.encode())
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                size += len(function["arguments"].encode())
    return completion_estimate(size)
