"""Bookkeeping for one upstream attempt: the usage row, health, capacity and metrics."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import structlog

from service.catalog.model import Route
from service.errors import ErrorKind, UpstreamError
from service.gateway.context import RequestContext, utcnow
from service.metering.events import UsageEvent
from service.routing.planner import Candidate, capacity_group
from service.upstreams.base import AttemptResult, CostSource, Usage

_ZERO = Decimal(0)
_KEY_HINTS = {
    "baseten": "check BASETEN_API_KEY",
    "xpay": "check XPAY_API_KEY",
    "orthogonal": "check ORTHOGONAL_API_KEY",
}
log = structlog.get_logger("switchyard.upstream")
# Failures that say something about the route's health (not the client's request).
_NEUTRAL_KINDS = {ErrorKind.INVALID_REQUEST, ErrorKind.PAYLOAD_TOO_LARGE}


class Attempt:
    """Holds a capacity slot from begin() until finish(); finish() is idempotent."""

    def __init__(self, rt: Any, ctx: RequestContext, candidate: Candidate, number: int, base_prompt: int) -> None:
        self.rt = rt
        self.base_prompt = base_prompt
        self.ctx = ctx
        self.candidate = candidate
        self.route: Route = candidate.route
        self.number = number
        self.started_at = utcnow()
        self.t0 = time.perf_counter()
        self.first_token_at = None
        self.first_token_t: float | None = None
        self._done = False
        self._group = capacity_group(self.route)

    def acquire(self) -> bool:
        if not self.rt.capacity.acquire(self._group, self.route.name):
            return False
        self.rt.health.begin(self.route.name)
        self.rt.metrics.route_inflight.labels(self.route.name).inc()
        return True

    def mark_first_token(self) -> None:
        if self.first_token_t is None:
            self.first_token_t = time.perf_counter()
            self.first_token_at = utcnow()

    def succeed(self, result: AttemptResult, *, client_disconnected: bool = False) -> UsageEvent:
        latency = time.perf_counter() - self.t0
        ttft = (self.first_token_t - self.t0) if self.first_token_t else None
        if client_disconnected:
            self.rt.health.neutral(self.route.name)
        else:
            self.rt.health.success(self.route.name, latency=latency, ttft=ttft)
        self.rt.metrics.attempts.labels(self.route.front_end, "ok").inc()
        return self._finish("ok", None, None, result, client_disconnected)

    def fail(self, err: UpstreamError, *, client_disconnected: bool = False) -> UsageEvent:
        if err.kind == ErrorKind.OPERATOR_AUTH:
            # Not the client's fault and not transient: the operator must fix a key or an account.
            log.error("upstream_rejected_operator_key", front_end=self.route.front_end,
                      upstream_status=err.upstream_status, hint=_KEY_HINTS.get(self.route.front_end),
                      request_id=self.ctx.request_id)
        if err.kind in _NEUTRAL_KINDS or client_disconnected:
            self.rt.health.neutral(self.route.name)
        else:
            self.rt.health.failure(self.route.name, err.kind, err.retry_after)
        self.rt.metrics.attempts.labels(self.route.front_end, err.kind.value).inc()
        result = AttemptResult(
            usage=err.usage,
            cost_usd=err.cost_usd,
            cost_source=err.cost_source or CostSource.COMPUTED,
            upstream_request_id=err.upstream_request_id,
        )
        if result.cost_usd is None and err.usage is not None:
            result.cost_usd = self.route.pricing.token_cost(
                err.usage.prompt_tokens, err.usage.completion_tokens, err.usage.cached_tokens
            )
        return self._finish("error", err.kind.value, err.upstream_status, result, client_disconnected)

    def _finish(self, status: str, code: str | None, http_status: int | None, result: AttemptResult,
                client_disconnected: bool) -> UsageEvent:
        if self._done:
            raise RuntimeError("attempt finished twice")
        self._done = True
        rt, ctx, route = self.rt, self.ctx, self.route
        rt.capacity.release(self._group, route.name)
        rt.metrics.route_inflight.labels(route.name).dec()
        self.ctx.upstream_seconds += time.perf_counter() - self.t0
        usage = result.usage
        cost = result.cost_usd
        estimated = False
        if usage is None and status == "ok":
            # The upstream reported nothing: estimate from the request and flag the row.
            usage = Usage(prompt_tokens=self.candidate.prompt_tokens,
                          completion_tokens=self.candidate.expected_output, estimated=True)
        if usage is not None and usage.estimated:
            estimated = True
        if cost is None:
            if usage is not None:
                cost = route.pricing.token_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
                if cost is None and route.estimate is not None:
                    cost = route.estimate.token_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            if cost is None and status == "ok":
                cost = self.candidate.expected
            if cost is not None and usage is not None and usage.estimated:
                result.cost_source = CostSource.ESTIMATED
        cost = cost if cost is not None else _ZERO
        billed = cost * (1 + ctx.principal.markup)
        usage = usage or Usage()
        event = UsageEvent(
            request_id=ctx.request_id,
            attempt=self.number,
            tenant_id=ctx.principal.tenant_id,
            key_id=ctx.principal.key_id,
            requested_model=ctx.requested_model,
            served_model=route.model,
            front_end=route.front_end,
            route=route.name,
            status=status,
            error_code=code,
            http_status=http_status,
            stream=ctx.stream,
            client_disconnected=client_disconnected,
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            provider_cost_usd=cost,
            billed_usd=billed,
            price_version=rt.catalog.version,
            cost_source=CostSource.ESTIMATED if estimated else result.cost_source,
            estimated=estimated,
            upstream_request_id=result.upstream_request_id,
            started_at=self.started_at,
            first_token_at=self.first_token_at,
            ended_at=utcnow(),
        )
        ctx.cost += cost
        ctx.billed += billed
        rt.ledger.submit(event)
        self._observe(event, result, usage)
        return event

    def _observe(self, event: UsageEvent, result: AttemptResult, usage: Usage) -> None:
        rt, route = self.rt, self.route
        m = rt.metrics
        model, fe = route.model, route.front_end
        if event.prompt_tokens:
            m.tokens.labels(model, fe, "prompt").inc(event.prompt_tokens)
        if event.completion_tokens:
            m.tokens.labels(model, fe, "completion").inc(event.completion_tokens)
        if event.reasoning_tokens:
            m.tokens.labels(model, fe, "reasoning").inc(event.reasoning_tokens)
        if event.cached_tokens:
            m.tokens.labels(model, fe, "cached").inc(event.cached_tokens)
        if event.provider_cost_usd:
            m.cost.labels(model, fe).inc(float(event.provider_cost_usd))
            tenant = m.tenant(str(event.tenant_id))
            m.tenant_cost.labels(tenant, "provider").inc(float(event.provider_cost_usd))
            m.tenant_cost.labels(tenant, "billed").inc(float(event.billed_usd))
        direct = rt.catalog.find_route("baseten", model)
        if direct is not None and direct.pricing.kind == "per_token" and event.status == "ok" and not usage.estimated:
            baseline = direct.pricing.token_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            if baseline is not None:
                m.add_savings(model, fe, baseline, event.provider_cost_usd)
        if result.cost_source == CostSource.RECEIPT and result.cost_usd is not None:
            computed = route.pricing.per_call if route.pricing.kind == "flat" else None
            if computed is None and route.estimate is not None and not usage.estimated:
                computed = route.estimate.token_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            if computed is not None:
                m.add_drift(fe, result.cost_usd, computed)
        if result.balance_usd is not None:
            m.marketplace_balance.labels(fe).set(float(result.balance_usd))
        if event.status == "ok" and usage.prompt_tokens and not usage.estimated:
            rt.calibration.observe(model, self.base_prompt, usage.prompt_tokens, usage.completion_tokens,
                                   tenant=self.ctx.principal.tenant_id)
