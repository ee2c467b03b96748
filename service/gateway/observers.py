"""What watches finished attempts: route health, Prometheus metrics, token calibration.

Each reads a `FinishedAttempt` after its usage row is queued; none decides money or holds state the
attempt needs released.
"""

from __future__ import annotations

import structlog

from service.catalog.model import Route
from service.errors import ErrorKind
from service.gateway.attempt import CANCELLED, OK, FinishedAttempt
from service.metering.pricing import CostSource
from service.observability.metrics import Metrics
from service.routing.allocation import FlatFeeAllocator
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.planner import capacity_group
from service.routing.quotes import QuoteAccuracy

log = structlog.get_logger("switchyard.upstream")

_KEY_HINTS = {
    "baseten": "check BASETEN_API_KEY",
    "xpay": "check XPAY_API_KEY",
    "orthogonal": "check ORTHOGONAL_API_KEY",
}
# Failures that say nothing about the route's health: the client's request, or the client itself.
_NEUTRAL_KINDS = {ErrorKind.INVALID_REQUEST, ErrorKind.PAYLOAD_TOO_LARGE, ErrorKind.CLIENT_GONE}


class HealthObserver:
    def __init__(self, health: HealthBoard) -> None:
        self.health = health

    def attempt_began(self, route: Route) -> None:
        self.health.begin(route.name)

    def attempt_ended(self, f: FinishedAttempt) -> None:
        name = f.route.name
        if f.status == OK:
            self.health.success(name, latency=f.latency, ttft=f.ttft, output_tokens=f.event.completion_tokens)
        elif f.status == CANCELLED or f.kind is None or f.kind in _NEUTRAL_KINDS:
            self.health.neutral(name)
        else:
            retry_after = getattr(f.error, "retry_after", None)
            self.health.failure(name, f.kind, retry_after)
            if f.kind is ErrorKind.OPERATOR_AUTH:
                # Not the client's fault and not transient: the operator must fix a key or an account.
                log.error("upstream_rejected_operator_key", front_end=f.route.front_end,
                          upstream_status=f.event.http_status, hint=_KEY_HINTS.get(f.route.front_end),
                          request_id=f.event.request_id)


class MetricsObserver:
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def attempt_began(self, route: Route) -> None:
        self.m.route_inflight.labels(route.name).inc()

    def attempt_ended(self, f: FinishedAttempt) -> None:
        m, e, route = self.m, f.event, f.route
        model, fe = route.model, route.front_end
        m.route_inflight.labels(route.name).dec()
        m.attempts.labels(fe, "ok" if f.status == OK else (f.kind.value if f.kind else f.status)).inc()
        for direction, count in (("prompt", e.prompt_tokens), ("completion", e.completion_tokens),
                                 ("reasoning", e.reasoning_tokens), ("cached", e.cached_tokens)):
            if count:
                m.tokens.labels(model, fe, direction).inc(count)
        if e.provider_cost_usd:
            m.cost.labels(model, fe).inc(float(e.provider_cost_usd))
        if e.provider_cost_usd or e.billed_usd:
            tenant = m.tenant(str(e.tenant_id))
            m.tenant_cost.labels(tenant, "provider").inc(float(e.provider_cost_usd))
            m.tenant_cost.labels(tenant, "billed").inc(float(e.billed_usd))
        cost = f.cost
        if cost.direct_provider_usd is not None and f.status == OK and not e.estimated:
            m.add_savings(model, fe, cost.direct_provider_usd, cost.provider_usd)
        if cost.reference_usd is not None and cost.source in (CostSource.RECEIPT, CostSource.ENVELOPE):
            m.add_drift(fe, cost.provider_usd, cost.reference_usd)
        if f.evidence.balance_usd is not None:
            m.marketplace_balance.labels(fe).set(float(f.evidence.balance_usd))


class CalibrationObserver:
    """Teaches the token estimator from every answer whose upstream reported its usage."""

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration

    def attempt_ended(self, f: FinishedAttempt) -> None:
        e = f.event
        if f.status == OK and e.prompt_tokens and not e.estimated:
            self.calibration.observe(f.route.model, f.base_prompt_tokens, e.prompt_tokens, e.completion_tokens,
                                     tenant=f.tenant_key, cap=f.needs.worst_output, effort=f.needs.reasoning_effort)


class AllocatorObserver:
    """Times every flat-fee call for the allocator: how long a call holds its slot decides the
    price of a slot-second (service.routing.allocation)."""

    def __init__(self, allocators: dict[str, FlatFeeAllocator]) -> None:
        self.allocators = allocators

    def attempt_ended(self, f: FinishedAttempt) -> None:
        if f.route.pricing.kind != "flat" or f.status != OK:
            return
        allocator = self.allocators.get(capacity_group(f.route))
        if allocator is not None:
            allocator.observe_call(f.event.prompt_tokens, f.event.completion_tokens, f.latency, f.route.name)


class QuoteObserver:
    """Records each quoted call's quote beside what the marketplace then charged, so ranking leans
    on quotes only as far as they have proved accurate (service.routing.quotes)."""

    def __init__(self, accuracy: QuoteAccuracy) -> None:
        self.accuracy = accuracy

    def attempt_ended(self, f: FinishedAttempt) -> None:
        quote = f.candidate.quote
        if quote is not None and f.status == OK and f.cost.source in (CostSource.ENVELOPE, CostSource.RECEIPT):
            self.accuracy.observe(f.route.name, quote, f.cost.provider_usd, prompt_tokens=f.event.prompt_tokens,
                                  completion_tokens=f.event.completion_tokens)
