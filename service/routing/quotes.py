"""How far an Orthogonal dry-run quote can be believed, learned per route from quoted against charged.

A quote is the marketplace's word on one call before it is made; what it then charges may differ
(the quote assumes the whole max_tokens, the price moves). Per route this keeps the log ratio of
charged to quoted: its mean corrects a bias, its spread decides how much ranking leans on the
quote rather than on the route's per-token estimate. Both start from the documented promise (an
exact quote), held as a few pseudo-observations, so a handful of bad quotes cannot flip routing
and a long run of them wins.

A route with no per-token estimate in the catalog (a model Baseten does not price) has nothing to
lean on but the quote, and a quote made for the whole max_tokens says little about one answer:
the same ratio correction fits a long prompt and a short one badly. So each route also learns the
per-token terms its charges follow, charged = input rate x prompt + output rate x completion, by
least squares over its recent calls' reported usage; once they are known, they stand in for the
missing estimate at the request's expected answer length (and for a route that has one, they
are what the marketplace really charges, which the catalog's Baseten prices only approximate).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from decimal import Decimal

from service.routing.least_squares import DecayingLeastSquares

# The documented promise counts as this many exact quotes.
PRIOR_QUOTES = 4.0
# A spread of log ratios this wide halves the weight of the quote (about +-30%).
SPREAD_HALF_TRUST = 0.3
# Recent quotes count more: the moving averages settle at this weight per observation.
_EMA = 0.05
# Calls with usage before a route's learned per-token terms are used.
MIN_RATE_CALLS = 20
# Per call, the weight older calls keep in the per-token fit: it follows the last few hundred.
_RATE_FORGET = 0.995


@dataclass(slots=True)
class _Record:
    n: float = 0.0
    mean: float = 0.0  # of log(charged / quoted)
    square: float = 0.0  # of its square

    def add(self, value: float) -> None:
        weight = max(_EMA, 1.0 / (self.n + 1.0))
        self.mean += weight * (value - self.mean)
        self.square += weight * (value * value - self.square)
        self.n += 1.0


def _rates(fit: DecayingLeastSquares) -> tuple[float, float] | None:
    """(USD per million prompt tokens, per million completion tokens), or None while the calls seen
    are too few, cannot tell the two apart (every one had the same mix of prompt and answer) or
    say a negative price."""
    if fit.n < MIN_RATE_CALLS:
        return None
    terms = fit.solve(min_relative_pivot=1e-9)
    if terms is None or terms[0] < 0 or terms[1] < 0:
        return None
    return terms[0], terms[1]


@dataclass(frozen=True, slots=True)
class QuoteView:
    """A quote as the planner ranks it: `corrected` is the quote times the learned bias, `trust`
    in [0, 1] how far ranking believes it over the estimate."""

    corrected: float
    trust: float


class QuoteAccuracy:
    def __init__(self) -> None:
        self._routes: dict[str, _Record] = {}
        # Per route: charged on (prompt, completion) in millions of tokens, no intercept; and its
        # solution, solved once per charge rather than on every plan that ranks the route.
        self._rates: dict[str, DecayingLeastSquares] = {}
        self._terms: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def observe(self, route: str, quoted: Decimal, charged: Decimal, *, prompt_tokens: int = 0,
                completion_tokens: int = 0) -> None:
        """One attempt on `route` that was quoted `quoted` and charged `charged` (USD), for the
        tokens its usage reported."""
        if quoted <= 0 or charged < 0:
            return
        ratio = math.log(max(float(charged), 1e-9) / float(quoted))
        with self._lock:
            self._routes.setdefault(route, _Record()).add(max(-5.0, min(5.0, ratio)))
            if prompt_tokens > 0 and completion_tokens >= 0:
                fit = self._rates.get(route)
                if fit is None:
                    fit = self._rates[route] = DecayingLeastSquares(2, _RATE_FORGET)
                fit.add((prompt_tokens / 1e6, completion_tokens / 1e6), float(charged))
                terms = _rates(fit)
                if terms is None:
                    self._terms.pop(route, None)
                else:
                    self._terms[route] = terms

    def rates(self, route: str) -> tuple[float, float] | None:
        """The per-token terms `route`'s charges have followed (USD per million prompt and
        completion tokens), once enough calls show them."""
        return self._terms.get(route)

    def learned_cost(self, route: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        terms = self.rates(route)
        if terms is None:
            return None
        return (terms[0] * prompt_tokens + terms[1] * completion_tokens) / 1e6

    def bias(self, route: str) -> float:
        """Charged over quoted, as learned (1.0 before any observation), shrunk toward the promise."""
        record = self._routes.get(route)
        if record is None:
            return 1.0
        shrink = record.n / (record.n + PRIOR_QUOTES)
        return math.exp(record.mean * shrink)

    def spread(self, route: str) -> float:
        """Standard deviation of the log ratio, shrunk toward zero (the promise) by the prior."""
        record = self._routes.get(route)
        if record is None:
            return 0.0
        variance = max(0.0, record.square - record.mean * record.mean)
        return math.sqrt(variance * record.n / (record.n + PRIOR_QUOTES))

    def view(self, route: str, quote: Decimal) -> QuoteView:
        spread = self.spread(route)
        trust = 1.0 / (1.0 + (spread / SPREAD_HALF_TRUST) ** 2)
        return QuoteView(corrected=float(quote) * self.bias(route), trust=trust)

    def record(self, route: str) -> dict[str, float | None] | None:
        """What `route`'s quoted calls have shown (None before any): charged over quoted, its
        spread, the calls seen, and the per-token terms once known (USD per million tokens)."""
        record = self._routes.get(route)
        if record is None:
            return None
        terms = self.rates(route)
        return {"bias": self.bias(route), "spread": self.spread(route), "observed": record.n,
                "trust": self.view(route, Decimal(1)).trust,
                "input_per_mtok": terms[0] if terms else None, "output_per_mtok": terms[1] if terms else None}

    def snapshot(self) -> dict[str, dict[str, float | None]]:
        return {route: shown for route in list(self._routes) if (shown := self.record(route)) is not None}
