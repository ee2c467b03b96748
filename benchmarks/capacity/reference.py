"""The online reference: how near the oracle a rule that decides at arrival can come, even knowing
more than any gateway can.

The reference knows each request's true saving and the true length of its flat-fee call, and it
borrows the oracle's own selectivity: for each 5-minute window, the saving per second held that
best separates the requests the oracle chose from the rest. It takes a request when the rate and a
slot allow and its saving per second beats that window's threshold, scaled by a constant and
optionally by the pool's occupancy; a few scalings are tried and the best is reported. What it
still lacks is what the oracle knows about the requests that have not arrived: when to leave a
slot free for a better one a few seconds away, and which call to drop because a better one will
need its slot. Its shortfall against the oracle is a yardstick for the gateway's allocator, which
knows only expected savings and holds and learns its prices from past demand. The benchmark runs
it on the requests that have a route besides the flat fee; the oracle's calls for the few that
have none take room the reference does not have to give, which if anything flatters it.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from benchmarks.capacity.oracle import RATE_WINDOW

WINDOW = 300.0
SCALES = (0.6, 0.8, 1.0, 1.2)
# Threshold times ((busy + 1) / slots) ** power: flat, or rising as the pool fills.
OCCUPANCY_POWERS = (0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Reference:
    chosen: list[bool]
    saving: float
    scale: float
    power: float


def window_thresholds(starts: list[float], densities: list[float], chosen: list[bool],
                      window: float = WINDOW) -> dict[int, float]:
    """Per window of arrivals: the density above which the oracle's choices are best told apart
    (fewest requests on the wrong side); inf where it chose none."""
    by_window: dict[int, list[tuple[float, bool]]] = {}
    for start, density, taken in zip(starts, densities, chosen, strict=True):
        by_window.setdefault(int(start // window), []).append((density, taken))
    out: dict[int, float] = {}
    for key, pairs in by_window.items():
        pairs.sort()
        wrong = sum(1 for _, taken in pairs if not taken)  # a threshold below every request
        best_wrong, best_at = wrong, 0
        for j, (_, taken) in enumerate(pairs):
            wrong += 1 if taken else -1  # request j moves below the threshold
            if wrong < best_wrong:
                best_wrong, best_at = wrong, j + 1
        # Admission is "density above the threshold": sit just below the first request admitted.
        out[key] = pairs[best_at][0] * (1 - 1e-12) if best_at < len(pairs) else float("inf")
    return out


def admit_online(starts: list[float], durations: list[float], savings: list[float], thresholds: dict[int, float],
                 rate_limit: int, concurrency_limit: int, *, scale: float = 1.0, power: float = 0.0,
                 window: float = WINDOW) -> list[bool]:
    """Decides each request as it arrives (starts ascending), within the pool's limits."""
    inflight: list[float] = []
    recent: deque[float] = deque()
    chosen = [False] * len(starts)
    for i, (start, duration, saving) in enumerate(zip(starts, durations, savings, strict=True)):
        while inflight and inflight[0] <= start:
            heapq.heappop(inflight)
        while recent and recent[0] <= start - RATE_WINDOW:
            recent.popleft()
        busy = len(inflight)
        if busy >= concurrency_limit or len(recent) >= rate_limit or duration <= 0:
            continue
        threshold = scale * thresholds.get(int(start // window), 0.0) * ((busy + 1) / concurrency_limit) ** power
        if saving / duration > threshold:
            chosen[i] = True
            heapq.heappush(inflight, start + duration)
            recent.append(start)
    return chosen


def best_online(starts: list[float], durations: list[float], savings: list[float], oracle_chosen: list[bool],
                rate_limit: int, concurrency_limit: int) -> Reference:
    """The best of the scalings tried, with the oracle's own per-window thresholds."""
    assert all(a <= b for a, b in zip(starts, starts[1:], strict=False)), "starts must be ascending"
    densities = [s / d if d > 0 else 0.0 for s, d in zip(savings, durations, strict=True)]
    thresholds = window_thresholds(starts, densities, oracle_chosen)
    best: Reference | None = None
    for power in OCCUPANCY_POWERS:
        for scale in SCALES:
            chosen = admit_online(starts, durations, savings, thresholds, rate_limit, concurrency_limit,
                                  scale=scale, power=power)
            saving = sum(s for s, taken in zip(savings, chosen, strict=True) if taken)
            if best is None or saving > best.saving:
                best = Reference(chosen, saving, scale, power)
    assert best is not None
    return best

