"""Admission before any upstream call: the key's rate limits, then the budgets' reservations.

Budgets reserve the request's worst-case cost and settle at the actual cost; rate limits count
requests and tokens a minute per key. Both are shared across processes through QuotaLeaser.
When Postgres is away, what a process already leased keeps being spent exactly; past that, hard
budgets fail closed (503) and rate limits fail open (they guard capacity, not money).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from service.auth.principal import Principal
from service.db.pool import fetch_bounded
from service.errors import GatewayError
from service.metering.quota import ZERO, QuotaLeaser, QuotaUnavailable

BUDGET_SLICE_FRACTION = Decimal("0.05")
UNLIMITED = Decimal("1e15")


@dataclass(frozen=True, slots=True)
class BudgetRule:
    id: uuid.UUID
    key_id: uuid.UUID | None
    period: str  # day | month
    limit: Decimal
    hard: bool


def period_start(period: str, now: datetime) -> datetime:
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == "minute":
        return now.replace(second=0, microsecond=0)
    raise ValueError(period)


@dataclass(slots=True)
class Admission:
    holds: list[tuple[str, datetime, Decimal, str]] = field(default_factory=list)  # scope, period, reserved, kind
    headers: dict[str, str] = field(default_factory=dict)
    soft_exceeded: bool = False
    settled: bool = False


class Admitter:
    def __init__(self, leaser: QuotaLeaser, pool_getter, *, budget_ttl: float = 30.0, clock=time.monotonic,
                 metrics=None) -> None:
        self.leaser = leaser
        self._metrics = metrics
        self._pool_getter = pool_getter
        self._budgets: dict[uuid.UUID, tuple[float, tuple[BudgetRule, ...]]] = {}
        self._ttl = budget_ttl
        self._clock = clock

    def evict(self, payload: str) -> None:
        kind, _, value = payload.partition(":")
        if kind == "tenant":
            try:
                self._budgets.pop(uuid.UUID(value), None)
            except ValueError:
                pass
        elif kind not in ("key",):
            self._budgets.clear()

    async def budgets(self, tenant_id: uuid.UUID) -> tuple[BudgetRule, ...]:
        cached = self._budgets.get(tenant_id)
        now = self._clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        pool = self._pool_getter()
        if pool is None:
            if cached is not None:
                return cached[1]
            raise QuotaUnavailable("budgets")
        try:
            rows = await fetch_bounded(
                pool, "SELECT id, key_id, period, limit_usd, hard FROM budgets WHERE tenant_id = $1", tenant_id
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if cached is not None:
                return cached[1]
            raise QuotaUnavailable("budgets") from exc
        rules = tuple(BudgetRule(r["id"], r["key_id"], r["period"], r["limit_usd"], r["hard"]) for r in rows)
        self._budgets[tenant_id] = (now + self._ttl, rules)
        return rules

    async def admit(self, principal: Principal, worst_cost: Decimal, worst_tokens: int) -> Admission:
        admission = Admission()
        now = datetime.now(UTC)
        try:
            await self._rate_limits(principal, worst_tokens, now, admission)
            await self._reserve_budgets(principal, worst_cost, now, admission)
        except BaseException:
            self.release(admission)
            raise
        return admission

    async def _rate_limits(self, p: Principal, worst_tokens: int, now: datetime, admission: Admission) -> None:
        minute = period_start("minute", now)
        reset = 60 - now.second - now.microsecond / 1e6
        for kind, limit, need in (("requests", p.rpm_limit, 1), ("tokens", p.tpm_limit, worst_tokens)):
            if limit is None:
                continue
            scope = f"{'rpm' if kind == 'requests' else 'tpm'}:{p.key_id}"
            limit_d, need_d = Decimal(limit), Decimal(need)
            try:
                ok = await self.leaser.reserve(scope, minute, limit_d, need_d, max(need_d, Decimal(max(1, limit // 10))))
            except QuotaUnavailable:
                ok = True  # fail open: a rate limit protects capacity, and the database is away
                need_d = ZERO
            remaining = self.leaser.remaining_hint(scope, minute, limit_d)
            admission.headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            admission.headers[f"x-ratelimit-remaining-{kind}"] = str(int(max(ZERO, remaining)))
            admission.headers[f"x-ratelimit-reset-{kind}"] = f"{reset:.0f}s"
            if not ok:
                retry = str(max(1, int(reset + 0.999)))
                if need_d > limit_d:
                    message = (f"Request too large: it may use up to {need} {kind} but this API key is limited "
                               f"to {limit} {kind} per minute. Lower max_tokens or the prompt.")
                else:
                    message = f"Rate limit reached: {limit} {kind} per minute for this API key. Retry in {retry} s."
                raise GatewayError(
                    429,
                    message,
                    type="rate_limit_error",
                    code=f"rate_limit_{kind}",
                    headers={**admission.headers, "retry-after": retry},
                )
            if need_d:
                admission.holds.append((scope, minute, need_d, kind))

    async def _reserve_budgets(self, p: Principal, worst_cost: Decimal, now: datetime, admission: Admission) -> None:
        try:
            rules = await self.budgets(p.tenant_id)
        except QuotaUnavailable:
            rules = ()  # no known budgets and no database to ask: nothing to enforce
        for rule in rules:
            if rule.key_id is not None and rule.key_id != p.key_id:
                continue
            scope = f"budget:{rule.id}"
            start = period_start(rule.period, now)
            slice_size = max(worst_cost, rule.limit * BUDGET_SLICE_FRACTION)
            try:
                ok = await self.leaser.reserve(scope, start, rule.limit, worst_cost, slice_size)
            except QuotaUnavailable:
                if rule.hard:
                    raise GatewayError(503, "Budget accounting is temporarily unavailable; retry shortly.",
                                       type="server_error", code="budget_unavailable",
                                       headers={"retry-after": "5"}) from None
                ok = False
            if rule.hard and rule.key_id is None and self._metrics is not None:
                remaining = self.leaser.remaining_hint(scope, start, rule.limit)
                self._metrics.budget_remaining.labels(self._metrics.tenant(str(p.tenant_id))).set(float(remaining))
            if ok:
                admission.holds.append((scope, start, worst_cost, "budget"))
                continue
            if rule.hard:
                raise GatewayError(
                    402,
                    f"This {'key' if rule.key_id else 'tenant'}'s {rule.period}ly budget of ${rule.limit} cannot "
                    f"cover this request (worst case ${worst_cost:.6f}).",
                    type="insufficient_quota",
                    code="budget_exceeded",
                    headers={"x-should-retry": "false"},
                )
            # A soft budget: served and flagged; the spend is still counted against it.
            admission.soft_exceeded = True
            admission.holds.append((scope, start, ZERO, "budget"))
        if admission.soft_exceeded:
            admission.headers["x-switchyard-budget-warning"] = "soft budget exceeded"

    def settle(self, admission: Admission, cost: Decimal, tokens: int) -> None:
        """Exactly once per admitted request, with what its attempts really cost."""
        if admission.settled:
            return
        admission.settled = True
        for scope, start, reserved, kind in admission.holds:
            actual = cost if kind == "budget" else (Decimal(1) if kind == "requests" else Decimal(tokens))
            self.leaser.settle(scope, start, reserved, actual)

    def release(self, admission: Admission) -> None:
        """A request refused after some holds were taken: give them back unspent."""
        if admission.settled:
            return
        admission.settled = True
        for scope, start, reserved, _ in admission.holds:
            self.leaser.settle(scope, start, reserved, ZERO)
