"""Prometheus metrics: one registry of every series Switchyard exports, with bounded labels.

Created once per process by the app (never at import). With several worker processes,
PROMETHEUS_MULTIPROC_DIR makes every worker write to shared files and /metrics aggregates them.
"""

from __future__ import annotations

import os
import platform
import threading
from decimal import Decimal
from typing import Self

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics import MetricWrapperBase

from service.observability.metric_values import flush_metric_values, use_buffered_values

# LLM calls span milliseconds (cached, tiny) to minutes (long reasoning).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

OTHER_TENANTS = "__other__"


class _FastLabels(MetricWrapperBase):
    """labels() that returns a known child with one dict lookup. prometheus_client's own checks the
    arguments, converts every value with str() and takes a lock each time: 0.7 us a call, about a
    dozen calls a request. Unknown label values, keyword labels and non-string values go the
    library's way (its children are stored under the str() of the values)."""

    def labels(self, *labelvalues: object, **labelkwargs: object) -> Self:
        if not labelkwargs:
            children: dict[tuple[object, ...], Self] | None = getattr(self, "_metrics", None)
            found = children.get(labelvalues) if children is not None else None  # None on a child
            if found is not None:
                return found
        return super().labels(*labelvalues, **labelkwargs)


class _Counter(_FastLabels, Counter):
    pass


class _Gauge(_FastLabels, Gauge):
    pass


class _Histogram(_FastLabels, Histogram):
    pass


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class TenantLabels:
    """Caps the distinct tenant label values a process emits; the rest fold into one series."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, tenant: str) -> str:
        if tenant in self._seen:
            return tenant
        with self._lock:
            if len(self._seen) < self._cap:
                self._seen.add(tenant)
                return tenant
        return OTHER_TENANTS


class Metrics:
    def __init__(self, *, tenant_cap: int = 100, version: str = "0.1.0") -> None:
        # The _created series double the exposition and no dashboard reads them.
        disable_created_metrics()
        use_buffered_values()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tenants = TenantLabels(tenant_cap)
        self.requests = _Counter(
            "switchyard_requests_total",
            "Chat requests answered, by served model, front end, status class and stream flag.",
            ["model", "front_end", "status_class", "stream"],
            registry=r,
        )
        self.request_duration = _Histogram(
            "switchyard_request_duration_seconds",
            "Whole request duration as the client sees it.",
            ["model", "front_end", "stream"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = _Histogram(
            "switchyard_time_to_first_token_seconds",
            "Time from request arrival to the first streamed content byte sent to the client.",
            ["model", "front_end"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.overhead = _Histogram(
            "switchyard_gateway_overhead_seconds",
            "Time spent inside Switchyard for a request, excluding time waiting on upstreams.",
            ["stream"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.quote_seconds = _Histogram(
            "switchyard_quote_seconds",
            "Time spent getting Orthogonal quotes (dry runs) while planning a request.",
            buckets=(*OVERHEAD_BUCKETS, 2.5, 5.0),
            registry=r,
        )
        self.attempts = _Counter(
            "switchyard_upstream_attempts_total",
            "Upstream attempts by front end and outcome (ok or an error kind).",
            ["front_end", "outcome"],
            registry=r,
        )
        self.fallbacks = _Counter(
            "switchyard_fallbacks_total",
            "Times a request moved on from a failed route to the next one.",
            ["front_end", "reason"],
            registry=r,
        )
        self.circuit_state = _Gauge(
            "switchyard_circuit_state",
            "Circuit breaker per route: 0 closed, 1 half-open, 2 open.",
            ["route"],
            registry=r,
            multiprocess_mode="max",
        )
        self.route_inflight = _Gauge(
            "switchyard_route_inflight",
            "Calls in flight per route (capacity in use).",
            ["route"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tokens = _Counter(
            "switchyard_tokens_total",
            "Tokens by direction (prompt, completion, reasoning, cached), served model and front end.",
            ["model", "front_end", "direction"],
            registry=r,
        )
        self.cost = _Counter(
            "switchyard_cost_usd_total",
            "Provider cost in USD by served model and front end.",
            ["model", "front_end"],
            registry=r,
        )
        self.tenant_cost = _Counter(
            "switchyard_tenant_cost_usd_total",
            "Provider cost and billed amount in USD by tenant (capped; the rest fold into __other__).",
            ["tenant", "kind"],
            registry=r,
        )
        # Counters only go up, so what routing saved and what it cost extra are two series;
        # net savings is savings minus overspend.
        self.savings = _Counter(
            "switchyard_savings_usd_total",
            "USD saved against Baseten direct for the same model and tokens, where the route was cheaper.",
            ["model", "front_end"],
            registry=r,
        )
        self.overspend = _Counter(
            "switchyard_overspend_usd_total",
            "USD paid above Baseten direct for the same model and tokens, where the route was dearer.",
            ["model", "front_end"],
            registry=r,
        )
        self.budget_remaining = _Gauge(
            "switchyard_budget_remaining_usd",
            "Remaining hard budget in USD for the current period, by tenant (capped).",
            ["tenant"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.marketplace_balance = _Gauge(
            "switchyard_marketplace_balance_usd",
            "The operator's prepaid balance at a marketplace, from its latest receipt.",
            ["front_end"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.rejections = _Counter(
            "switchyard_rejections_total",
            "Requests refused before any upstream call, by reason.",
            ["reason"],
            registry=r,
        )
        self.usage_queue_depth = _Gauge(
            "switchyard_usage_queue_depth",
            "Usage rows waiting in memory to be written to Postgres.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.usage_rows = _Counter(
            "switchyard_usage_rows_total",
            "Usage rows by fate: written, spilled (a write failed: kept in the journal), replayed (written "
            "later), dropped (no journal), rejected (refused by Postgres, set aside under journal/rejected).",
            ["fate"],
            registry=r,
        )
        self.usage_write_errors = _Counter(
            "switchyard_usage_write_errors_total",
            "Failed batch writes of usage rows to Postgres.",
            registry=r,
        )
        self.usage_writer_errors = _Counter(
            "switchyard_usage_writer_errors_total",
            "Unexpected exceptions in the usage writer's loops (each kept its rows and went on), by loop.",
            ["task"],
            registry=r,
        )
        self.usage_journal_errors = _Counter(
            "switchyard_usage_journal_errors_total",
            "Usage journal trouble by kind: write (a failed append or sync, retried), durable_timeout "
            "(an answer sent before its row reached the disk), torn_line (an unreadable line skipped on "
            "replay), encode (a row only in memory), sync (a failed fdatasync behind an answer in write mode).",
            ["kind"],
            registry=r,
        )
        self.cost_drift = _Counter(
            "switchyard_cost_drift_usd_total",
            "USD a marketplace charged above the computed cost, where its own charge is known.",
            ["front_end"],
            registry=r,
        )
        self.cost_drift_under = _Counter(
            "switchyard_cost_drift_under_usd_total",
            "USD a marketplace charged below the computed cost, where its own charge is known.",
            ["front_end"],
            registry=r,
        )
        self.flat_fee_price = _Gauge(
            "switchyard_flat_fee_price_usd",
            "The current shadow price of a flat-fee call: per call (rate limit) and per second a call holds "
            "a slot (concurrency); a request takes the flat fee only when it saves more.",
            ["group", "kind"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.flat_fee_decisions = _Counter(
            "switchyard_flat_fee_decisions_total",
            "Requests that wanted a flat-fee call: admitted to it, or held back for bigger savings.",
            ["group", "decision"],
            registry=r,
        )
        self.capacity_slots = _Gauge(
            "switchyard_capacity_slots",
            "Marketplace capacity by group: slots in use and the concurrency limit, over all its keys.",
            ["group", "state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.capacity_refusals = _Counter(
            "switchyard_capacity_refusals_total",
            "Routes a request could not use because their marketplace was at its rate or concurrency limit.",
            ["front_end"],
            registry=r,
        )
        self.build_info = _Gauge(
            "switchyard_build_info",
            "Build information.",
            ["version", "python"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(version=version, python=platform.python_version()).set(1)

    def tenant(self, tenant: str) -> str:
        return self.tenants.label(tenant)

    def add_savings(self, model: str, front_end: str, direct: Decimal, paid: Decimal) -> None:
        """Against the Baseten-direct price: the saving or the overspend, never a negative increment."""
        if paid < direct:
            self.savings.labels(model, front_end).inc(float(direct - paid))
        elif paid > direct:
            self.overspend.labels(model, front_end).inc(float(paid - direct))

    def add_drift(self, front_end: str, charged: Decimal, computed: Decimal) -> None:
        if charged > computed:
            self.cost_drift.labels(front_end).inc(float(charged - computed))
        elif charged < computed:
            self.cost_drift_under.labels(front_end).inc(float(computed - charged))

    def exposition(self) -> bytes:
        path = multiprocess_dir()
        if path:
            flush_metric_values()  # this process's own latest counts; the others' are at most 50 ms old
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)
            return generate_latest(registry)
        return generate_latest(self.registry)


def status_class(status: int) -> str:
    return f"{status // 100}xx"
