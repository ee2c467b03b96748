"""Admission: the key's rate limits before any upstream call, and the budgets' reservations.

Budgets are reserved in billed amounts (what the tenant is charged) and grow attempt by attempt:
before each attempt the request's holds must cover what its earlier attempts cost plus this
attempt's bound, so fallbacks never spend past a hard budget and a request never holds more than
it can use. Settled at the actual billed total. Both are shared across processes through
QuotaLeaser. When Postgres is away, what a process already leased keeps being spent exactly; past
that, hard budgets fail closed (503) and soft ones serve and flag; rate limits fail open (they
guard capacity, not money). A principal always carries its budget rules (loaded with the key), so
no request is ever admitted without knowing them.

Budgets bind at three levels -- the tenant, the key's project, the key -- and a request holds
against every rule that binds it, each on its own lease: it passes only if every level has room,
and a refusal at one level leaves the others' holds to be given back when it settles.

Rolling windows (the last N hours, not a calendar period) keep the same never-passed guarantee by
counting spend in hourly buckets. A request reserves in the bucket of its admission hour; Postgres
(switchyard_quota_lease_window) grants a slice into a bucket only if every N-hour window that
contains that bucket -- the ones ending in it and the ones ending in the later buckets up to N-1
hours on -- keeps its settled spend plus its outstanding leases within the limit. A bucket's
spend plus leases never grows except through such a grant (settling moves leased into spent,
releasing gives it back), so at every moment each window's true spend is at most its counted sum,
which no grant let past the limit. A reservation that lands in an older bucket (a fallback after
the hour turned) is checked against the current windows too. Spend ages out of the window a whole
hour at a time, which errs on the side of refusing, never of passing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from service.auth.principal import BudgetRule, Principal
from service.errors import GatewayError
from service.metering.quota import ZERO, QuotaLeaser, QuotaUnavailable
from service.observability.metrics import Metrics

BUDGET_SLICE_FRACTION = Decimal("0.05")


def period_start(period: str, now: datetime) -> datetime:
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period in ("hour", "rolling"):  # a rolling window is counted in hourly buckets
        return now.replace(minute=0, second=0, microsecond=0)
    if period == "minute":
        return now.replace(second=0, microsecond=0)
    raise ValueError(period)


def rule_window(rule: BudgetRule) -> timedelta | None:
    """A rolling budget's window; None for a calendar period."""
    return timedelta(hours=rule.window_hours) if rule.period == "rolling" and rule.window_hours else None


@dataclass(slots=True)
class Hold:
    scope: str
    period: datetime
    held: Decimal
    kind: str  # budget | requests | tokens


@dataclass(slots=True)
class Admission:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    holds: list[Hold] = field(default_factory=list)
    budget_holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    soft_exceeded: bool = False
    settled: bool = False
    refused_by: list[BudgetRule] = field(default_factory=list)  # hard budgets that had no room


class Admitter:
    def __init__(self, leaser: QuotaLeaser, *, metrics: Metrics | None = None) -> None:
        self.leaser = leaser
        self._metrics = metrics

    async def admit(self, principal: Principal, worst_tokens: int) -> Admission:
        """The key's rate limits; raises a 429 GatewayError when over one."""
        admission = Admission()
        try:
            await self._rate_limits(principal, worst_tokens, admission)
        except BaseException:
            self.release(admission)
            raise
        return admission

    async def _rate_limits(self, p: Principal, worst_tokens: int, admission: Admission) -> None:
        now = admission.now
        minute = period_start("minute", now)
        reset = 60 - now.second - now.microsecond / 1e6
        for kind, limit, need in (("requests", p.rpm_limit, 1), ("tokens", p.tpm_limit, worst_tokens)):
            if limit is None:
                continue
            scope = f"{'rpm' if kind == 'requests' else 'tpm'}:{p.key_id}"
            limit_d, need_d = Decimal(limit), Decimal(need)
            try:
                slice_size = max(need_d, Decimal(max(1, limit // 10)))
                ok = await self.leaser.reserve(scope, minute, limit_d, need_d, slice_size)
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
                    headers = {**admission.headers, "x-should-retry": "false"}
                else:
                    message = f"Rate limit reached: {limit} {kind} per minute for this API key. Retry in {retry} s."
                    headers = {**admission.headers, "retry-after": retry}
                raise GatewayError(429, message, type="rate_limit_error", code=f"rate_limit_{kind}",
                                   headers=headers)
            if need_d:
                admission.holds.append(Hold(scope, minute, need_d, kind))

    async def cover(self, admission: Admission, principal: Principal, total_billed: Decimal) -> bool:
        """Grow the request's budget holds to `total_billed`; False when a hard budget cannot take
        it (nothing is taken back: settle or release returns what is unused; the levels after a
        refusing one are not asked). Raises a 503 GatewayError when a hard budget cannot be checked
        because the database is away."""
        ok = True
        for rule in principal.budgets:
            if not ok:
                break
            hold = admission.budget_holds.get(rule.id)
            if hold is None:
                hold = Hold(f"budget:{rule.id}", period_start(rule.period, admission.now), ZERO, "budget")
                admission.budget_holds[rule.id] = hold
                admission.holds.append(hold)
            extra = total_billed - hold.held
            if extra <= 0:
                continue
            slice_size = max(extra, rule.limit * BUDGET_SLICE_FRACTION)
            try:
                granted = await self.leaser.reserve(hold.scope, hold.period, rule.limit, extra, slice_size,
                                                    window=rule_window(rule))
            except QuotaUnavailable:
                if rule.hard:
                    raise GatewayError(
                        503, "Budget accounting is temporarily unavailable (the database cannot be reached), and "
                        "this request may not pass a hard budget unchecked; retry shortly.",
                        type="server_error", code="budget_unavailable", headers={"retry-after": "5"}) from None
                granted = False
            if granted:
                hold.held += extra
            elif rule.hard:
                ok = False
                if rule not in admission.refused_by:
                    admission.refused_by.append(rule)
            else:
                # A soft budget: served and flagged; the spend is still counted against it.
                admission.soft_exceeded = True
                admission.headers["x-switchyard-budget-warning"] = "soft budget exceeded"
            self._gauge(principal, rule, hold)
        return ok

    def _gauge(self, p: Principal, rule: BudgetRule, hold: Hold) -> None:
        if self._metrics is not None and rule.hard and rule.level == "tenant":
            remaining = self.leaser.remaining_hint(hold.scope, hold.period, rule.limit)
            self._metrics.budget_remaining.labels(self._metrics.tenant(str(p.tenant_id))).set(float(remaining))

    @staticmethod
    def refusal(principal: Principal, needed: Decimal, admission: Admission | None = None) -> GatewayError:
        rules = admission.refused_by if admission is not None and admission.refused_by else principal.budgets
        what = ", ".join(r.describe() for r in rules if r.hard)
        return GatewayError(
            402, f"This request cannot fit within {what or 'its'} hard budget: it may cost up to ${needed:.6f}"
            " (its bound, before it runs) and the budget's remainder is less.",
            type="insufficient_quota", code="budget_exceeded", headers={"x-should-retry": "false"})

    def settle(self, admission: Admission, billed: Decimal, tokens: int) -> None:
        """Exactly once per admitted request, with what its attempts were billed."""
        if admission.settled:
            return
        admission.settled = True
        for hold in admission.holds:
            if hold.kind == "budget":
                actual = billed
            else:
                actual = Decimal(1) if hold.kind == "requests" else Decimal(tokens)
            self.leaser.settle(hold.scope, hold.period, hold.held, actual)

    def release(self, admission: Admission) -> None:
        """A request refused before any attempt: give every hold back unspent."""
        if admission.settled:
            return
        admission.settled = True
        for hold in admission.holds:
            self.leaser.settle(hold.scope, hold.period, hold.held, ZERO)
