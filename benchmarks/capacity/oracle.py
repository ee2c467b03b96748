"""The offline oracle: knowing the whole trace (true tokens, answers, call durations), which requests
should take the flat-fee calls so the day costs least, within the pool's limits.

A mixed-integer program, solved by HiGHS through scipy.optimize.milp (scipy ships HiGHS; no
solver to install): x_i = 1 when request i takes the flat fee, maximising the saving
sum s_i x_i, where s_i is its cheapest other route's true cost less the fee, subject to
  - rate: at most R = rpm x keys calls start in any 60-second window (the limiter's window);
  - concurrency: at most C = concurrency x keys calls in flight when any call starts.
Both are sums over runs of consecutive requests, written with running totals (Y over start order,
Z over end order) so each row has two non-zeros and the program stays linear in the trace's size;
rows that can never bind are left out. With several keys the limits are pooled, a relaxation (a
real assignment must also fit each key), so the oracle's cost is a lower bound there.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

RATE_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class OracleChoice:
    chosen: list[bool]  # per candidate, in the order given
    saving: float  # sum of the chosen savings (USD, float: exact costs are summed by the caller)
    bound: float  # the solver's bound: no assignment saves more
    status: str
    seconds: float
    mip_gap: float | None


def allocate(starts: list[float], durations: list[float], savings: list[float], rate_limit: int,
             concurrency_limit: int, time_limit: float = 120.0) -> OracleChoice:
    """`starts` sorted ascending; savings > 0."""
    n = len(starts)
    began = time.perf_counter()
    if n == 0:
        return OracleChoice([], 0.0, 0.0, "empty", 0.0, 0.0)
    t = np.asarray(starts, dtype=float)
    d = np.asarray(durations, dtype=float)
    s = np.asarray(savings, dtype=float)
    ends = t + d
    end_order = np.argsort(ends, kind="stable")
    sorted_ends = ends[end_order]
    # Variables: x (0..n-1), Y (n..2n-1), Z (2n..3n-1); Y_k = x_0 + .. + x_k, Z_m = the same over end order.
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lower: list[float] = []
    upper: list[float] = []
    r = 0

    def row(entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        nonlocal r
        for col, val in entries:
            rows.append(r)
            cols.append(col)
            vals.append(val)
        lower.append(lo)
        upper.append(hi)
        r += 1

    for k in range(n):
        row([(n + k, 1.0), (k, -1.0)] + ([(n + k - 1, -1.0)] if k else []), 0.0, 0.0)
    for m in range(n):
        row([(2 * n + m, 1.0), (int(end_order[m]), -1.0)] + ([(2 * n + m - 1, -1.0)] if m else []), 0.0, 0.0)
    for j in range(n):
        hi = bisect.bisect_right(starts, starts[j]) - 1
        lo = bisect.bisect_right(starts, starts[j] - RATE_WINDOW)  # starts at exactly t-60 have expired
        if hi - lo + 1 > rate_limit:
            row([(n + hi, 1.0)] + ([(n + lo - 1, -1.0)] if lo else []), -np.inf, float(rate_limit))
        ended = int(np.searchsorted(sorted_ends, starts[j], side="right"))  # released before j starts
        if hi + 1 - ended > concurrency_limit:
            row([(n + hi, 1.0)] + ([(2 * n + ended - 1, -1.0)] if ended else []), -np.inf, float(concurrency_limit))
    matrix = coo_array((vals, (rows, cols)), shape=(r, 3 * n)).tocsr()
    cost = np.concatenate([-s, np.zeros(2 * n)])
    bounds_lo = np.zeros(3 * n)
    bounds_hi = np.concatenate([np.ones(n), np.full(2 * n, np.inf)])
    constraints = LinearConstraint(matrix, np.asarray(lower), np.asarray(upper))
    integral = milp(cost, constraints=constraints, bounds=Bounds(bounds_lo, bounds_hi),
                    integrality=np.concatenate([np.ones(n), np.zeros(2 * n)]),
                    options={"time_limit": time_limit, "mip_rel_gap": 1e-4})
    if integral.x is None:
        raise RuntimeError(f"oracle found no assignment: {integral.message}")
    chosen = [bool(v > 0.5) for v in integral.x[:n]]
    saving = float(sum(s[i] for i in range(n) if chosen[i]))
    # HiGHS's own bound: no assignment within the limits saves more than this.
    dual = getattr(integral, "mip_dual_bound", None)
    bound = -float(dual) if dual is not None else saving
    return OracleChoice(chosen=chosen, saving=saving, bound=bound, status=integral.message,
                        seconds=time.perf_counter() - began, mip_gap=getattr(integral, "mip_gap", None))


def check(starts: list[float], durations: list[float], chosen: list[bool], rate_limit: int,
          concurrency_limit: int) -> None:
    """Replays the chosen calls against the limits; raises if any start would have been refused."""
    import heapq

    window: list[float] = []
    inflight: list[float] = []
    for start, duration, taken in zip(starts, durations, chosen, strict=True):
        if not taken:
            continue
        while inflight and inflight[0] <= start:
            heapq.heappop(inflight)
        window = [w for w in window if w > start - RATE_WINDOW]
        if len(window) >= rate_limit or len(inflight) >= concurrency_limit:
            raise AssertionError(f"oracle exceeds the limits at {start:.3f}")
        window.append(start)
        heapq.heappush(inflight, start + duration)
