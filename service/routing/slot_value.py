"""What one more busy slot costs: admission control for a pool of slots, from recent demand.

A pool of C slots where requests arrive at rate `arrivals`, each worth its own reward (the saving
of a flat-fee call, in units of an average call's hold) and holding a slot for `hold` seconds on
average, is a loss system: a request finding every slot busy is lost. Admitting a request when n
slots are busy gains its reward but costs the rewards of the requests that then find the pool
full; that cost, delta(n), is the difference in long-run value between n and n+1 busy slots, and
taking exactly the requests worth more than delta(n) is optimal (the M/M/C/C admission problem).
With few slots busy delta is small, so a free slot is not left idle waiting for a better request
that is unlikely to come before it would have been free again; as the pool fills it rises toward
the reward of the requests the pool can still hope to serve.

delta solves the average-reward equations of the birth-death chain, for gain g:
    g = arrivals * phi(delta(0))
    g = arrivals * phi(delta(n)) + n / hold * delta(n-1)      0 < n < C
    g = C / hold * delta(C-1)
where phi(x) = E[max(reward - x, 0)] over the demand's rewards. Given g the first C equations give
delta(0..C-1) in turn; the last holds for exactly one g, found by bisection (every delta falls as
g rises).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

_STEPS = 48


class RewardCurve:
    """phi(x) = mean of max(reward - x, 0) over a sample of rewards, and its inverse."""

    def __init__(self, rewards: Sequence[float]) -> None:
        self._sorted = sorted(r for r in rewards if r > 0)
        self._count = max(len(rewards), 1)
        # _above[i]: the sum of _sorted[i:]
        above = [0.0] * (len(self._sorted) + 1)
        for i in range(len(self._sorted) - 1, -1, -1):
            above[i] = above[i + 1] + self._sorted[i]
        self._above = above

    def phi(self, x: float) -> float:
        i = bisect.bisect_right(self._sorted, x)
        return (self._above[i] - x * (len(self._sorted) - i)) / self._count

    def inverse(self, y: float) -> float:
        """The x >= 0 with phi(x) = y: 0 when y >= phi(0), inf when y <= 0."""
        if y <= 0:
            return math.inf
        values = self._sorted
        if not values or y >= self.phi(0.0):
            return 0.0
        # phi is piecewise linear, falling, with kinks at the rewards: find the piece.
        low, high = 0, len(values)  # phi(values[k]) falls as k rises; find the first k with phi <= y
        while low < high:
            mid = (low + high) // 2
            if self.phi(values[mid]) <= y:
                high = mid
            else:
                low = mid + 1
        k = low  # phi(values[k]) <= y < phi(values[k-1]) (or phi(0) for k = 0)
        above = len(values) - k  # rewards above x on this piece
        return (self._above[k] - y * self._count) / above


def slot_costs(rewards: Sequence[float], arrivals: float, hold: float, slots: int) -> list[float]:
    """delta(n) for n = 0..slots-1 busy slots: the reward below which a request is turned away.
    `arrivals` per second, `hold` mean seconds, rewards per request (the positive ones count)."""
    if slots <= 0:
        return []
    curve = RewardCurve(rewards)
    if arrivals <= 0 or hold <= 0 or curve.phi(0.0) <= 0:
        return [0.0] * slots
    service = 1.0 / hold

    def deltas(g: float) -> list[float]:
        out: list[float] = []
        previous = 0.0
        for n in range(slots):
            left = g - n * service * previous
            delta = curve.inverse(left / arrivals)
            out.append(delta)
            if math.isinf(delta):
                out.extend([math.inf] * (slots - n - 1))
                break
            previous = delta
        return out

    low, high = 0.0, arrivals * curve.phi(0.0)
    for _ in range(_STEPS):
        g = (low + high) / 2
        last = deltas(g)[-1]
        if last * slots * service > g:
            low = g  # the pool is worth more than g: raise it
        else:
            high = g
    return deltas(high)
