"""How far an Orthogonal dry-run quote can be believed, learned per route from quoted against charged.

A quote is the marketplace's word on one call before it is made; what it then charges may differ
(the quote assumes the whole max_tokens, the price moves). Per route this keeps the log ratio of
charged to quoted: its mean corrects a bias, its spread decides how much ranking leans on the
quote rather than on the route's per-token estimate. Both start from the documented promise (an
exact quote), held as a few pseudo-observations, so a handful of bad quotes cannot flip routing
and a long run of them wins.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from decimal import Decimal

# The documented promise counts as this many exact quotes.
PRIOR_QUOTES = 4.0
# A spread of log ratios this wide halves the weight of the quote (about +-30%).
SPREAD_HALF_TRUST = 0.3
# Recent quotes count more: the moving averages settle at this weight per observation.
_EMA = 0.05


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


@dataclass(frozen=True, slots=True)
class QuoteView:
    """A quote as the planner ranks it: `corrected` is the quote times the learned bias, `trust`
    in [0, 1] how far ranking believes it over the estimate."""

    corrected: float
    trust: float


class QuoteAccuracy:
    def __init__(self) -> None:
        self._routes: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def observe(self, route: str, quoted: Decimal, charged: Decimal) -> None:
        """One attempt on `route` that was quoted `quoted` and charged `charged` (USD)."""
        if quoted <= 0 or charged < 0:
            return
        ratio = math.log(max(float(charged), 1e-9) / float(quoted))
        with self._lock:
            self._routes.setdefault(route, _Record()).add(max(-5.0, min(5.0, ratio)))

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

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {route: {"bias": self.bias(route), "spread": self.spread(route), "observed": r.n}
                for route, r in list(self._routes.items())}
