"""Who gets the scarce flat-fee calls: shadow prices learned online from recent demand.

xpay's flat fee saves most on long prompts and long answers, but a key takes only so many calls a
minute and so many at once. Taking the flat fee first-come, first-served spends the calls on
whichever requests arrive first. Here a request takes it only when its expected saving beats what
the call uses up: a price per call (the rate limit's shadow price) plus a price per second the
call holds a slot (the concurrency limit's), `saving > per_call + per_second x hold`.

The prices come from the recent window's demand: the saving and expected hold of every request
that wanted the flat fee. They are the prices at which the requests worth serving would just fill
the pool's capacity over that window (calls a minute, and slot-seconds); with demand below
capacity both are zero and every saving is taken, and they fall as soon as the keys have room to
spare. A call's hold is predicted from its prompt and expected answer (seconds = a + b x prompt
+ c x output, fitted to the calls served), since the longest calls, often the long answers, tie a
slot up for a minute for the same flat fee.

Capacity is the pool's: every key with its own rate and concurrency. With several gateway
processes each configures its own share of every key (capacity.split_limits): the shares are
configured, not coordinated, and each process sees its share of the demand.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from dataclasses import dataclass

from service.routing.capacity import WINDOW_SECONDS, CapacityBoard, Clock

WINDOW = 300.0
# Plan to fill this share of the capacity: a little headroom for bursts within a minute, which
# would otherwise find the keys full when the best request comes.
TARGET_USE = 0.95
# The capacity planned for scales from the first (keys full) to the second (keys idle).
ROOM = (0.5, 2.0)
# Before calls have been timed, a call is assumed to hold its slot this long (xpay answers are buffered).
DEFAULT_HOLD = 10.0
# Recompute the prices at most this often: cheap, but not on every request.
RECOMPUTE_SECONDS = 2.0
# Calls timed before the fitted hold is used instead of the mean.
MIN_FIT_CALLS = 30
_FORGET = 0.998  # per timed call: the fit follows the last thousand calls or so
_SEARCH_STEPS = 16
# Demand remembered at most: past this the window shortens (a busy process has enough in less).
MAX_DEMAND = 4_000
# Routes with a hold fit of their own (a catalog's flat-fee routes are a few dozen).
MAX_ROUTES = 256


@dataclass(frozen=True, slots=True)
class Prices:
    per_call: float  # USD
    per_second: float  # USD per second a call holds a slot


@dataclass(frozen=True, slots=True)
class AllocatorState:
    per_call_usd: float
    per_second_usd: float
    capacity_calls_per_minute: float
    demand_per_minute: float
    admitted: int
    held_back: int


class HoldModel:
    """Seconds a call holds its slot from its prompt and answer tokens: least squares on
    (1, prompt, output), with older calls forgotten, fitted to the calls timed so far."""

    _SCALE = (1.0, 1e-3, 1e-2)  # thousands of prompt tokens, hundreds of output tokens

    def __init__(self) -> None:
        self._xx = [[0.0] * 3 for _ in range(3)]
        self._xy = [0.0] * 3
        self.calls = 0
        self._mean = 0.0
        self._coef: tuple[float, float, float] | None = None

    def observe(self, prompt_tokens: int, output_tokens: int, seconds: float) -> None:
        x = (1.0, prompt_tokens * self._SCALE[1], output_tokens * self._SCALE[2])
        for i in range(3):
            for j in range(3):
                self._xx[i][j] = _FORGET * self._xx[i][j] + x[i] * x[j]
            self._xy[i] = _FORGET * self._xy[i] + x[i] * seconds
        self.calls += 1
        self._mean += (seconds - self._mean) / min(self.calls, 1_000)
        self._coef = None

    def predict(self, prompt_tokens: int, output_tokens: int, default: float) -> float:
        if self.calls < MIN_FIT_CALLS:
            return self._mean if self.calls else default
        if self._coef is None:
            self._coef = _solve(self._xx, self._xy) or (self._mean, 0.0, 0.0)
        a, b, c = self._coef
        seconds = a + b * prompt_tokens * self._SCALE[1] + c * output_tokens * self._SCALE[2]
        # Never below a tenth of the mean: a fit is not to be trusted outside what it saw.
        return max(seconds, 0.1 * self._mean)


def _solve(a: list[list[float]], b: list[float]) -> tuple[float, float, float] | None:
    """3x3 linear system by Gaussian elimination with a small ridge; None when singular."""
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for i in range(3):
        m[i][i] += 1e-6 * (1.0 + abs(m[i][i]))
    for col in range(3):
        pivot = max(range(col, 3), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(3):
            if r != col:
                factor = m[r][col] / m[col][col]
                for k in range(col, 4):
                    m[r][k] -= factor * m[col][k]
    return (m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2])


class FlatFeeAllocator:
    """The prices for one capacity group (a pool of keys on a CapacityBoard)."""

    def __init__(self, board: CapacityBoard, group: str, *, clock: Clock = time.monotonic,
                 window_seconds: float = WINDOW, target_use: float = TARGET_USE,
                 room: tuple[float, float] = ROOM) -> None:
        self.board = board
        self.group = group
        self._clock = clock
        self.window = window_seconds
        self.target_use = target_use
        self.room = room
        self.holds = HoldModel()  # every call of the pool, for routes with few calls of their own
        self._route_holds: dict[str, HoldModel] = {}
        self._demand: deque[tuple[float, float, float]] = deque()  # (time, saving, expected hold)
        self._first_seen: float | None = None
        self._prices = Prices(0.0, 0.0)
        self._computed_at = -math.inf
        self.admitted = 0
        self.held_back = 0

    # ---- what callers report --------------------------------------------------------------
    def expected_hold(self, prompt_tokens: int, output_tokens: int, route: str | None = None) -> float:
        """Seconds a call is expected to hold its slot: its route's own fit once it has enough
        calls (models prefill and decode at very different speeds), else the pool's."""
        pooled = self.holds.predict(prompt_tokens, output_tokens, self.board.mean_hold(self.group) or DEFAULT_HOLD)
        own = self._route_holds.get(route) if route is not None else None
        if own is None or own.calls < MIN_FIT_CALLS:
            return pooled
        return own.predict(prompt_tokens, output_tokens, pooled)

    def observe_call(self, prompt_tokens: int, output_tokens: int, seconds: float, route: str | None = None) -> None:
        """A flat-fee call of this group that ended: its route, tokens and how long it held its slot."""
        self.holds.observe(prompt_tokens, output_tokens, seconds)
        if route is not None:
            own = self._route_holds.get(route)
            if own is None:
                if len(self._route_holds) >= MAX_ROUTES:
                    return
                own = self._route_holds[route] = HoldModel()
            own.observe(prompt_tokens, output_tokens, seconds)

    def consider(self, saving: float, *, prompt_tokens: int = 0, output_tokens: int = 0, route: str | None = None,
                 count: bool = True) -> bool:
        """Should a request whose flat-fee call on `route` is expected to save `saving` USD take
        it? `count` adds it to the demand (once per request: not when it is planned again)."""
        now = self._clock()
        hold = self.expected_hold(prompt_tokens, output_tokens, route)
        if count and saving > 0:
            if self._first_seen is None:
                self._first_seen = now
            self._demand.append((now, saving, hold))
            if len(self._demand) > MAX_DEMAND:
                self._demand.popleft()
        prices = self.prices(now)
        # A request with no other route takes the flat fee whatever the prices.
        admit = math.isinf(saving) or saving > (prices.per_call + prices.per_second * hold)
        if count:
            if admit:
                self.admitted += 1
            else:
                self.held_back += 1
        return admit

    # ---- the prices -----------------------------------------------------------------------
    def prices(self, now: float | None = None) -> Prices:
        now = self._clock() if now is None else now
        if now - self._computed_at >= RECOMPUTE_SECONDS:
            self._computed_at = now
            horizon = now - self.window
            while self._demand and self._demand[0][0] <= horizon:
                self._demand.popleft()
            self._prices = self._clearing_prices(now)
        return self._prices

    def capacity(self) -> tuple[float, float]:
        """(calls a second, slots) of the pool: every key's rate and concurrency (inf: unlimited)."""
        keys = self.board.keys(self.group)
        if not keys:
            return math.inf, math.inf
        rate = sum(k.rpm / WINDOW_SECONDS if k.rpm is not None else math.inf for k in keys)
        slots = sum(float(k.concurrency) if k.concurrency is not None else math.inf for k in keys)
        return rate, slots

    def _clearing_prices(self, now: float) -> Prices:
        """The lowest prices at which the window's demand worth serving fits its capacity: calls
        within rate x span, slot-seconds within slots x span."""
        demand = self._demand
        if not demand or self._first_seen is None:
            return Prices(0.0, 0.0)
        rate, slots = self.capacity()
        start = self._first_seen if len(demand) < MAX_DEMAND else demand[0][0]
        span = min(self.window, max(now - start, WINDOW_SECONDS))
        room = self.target_use * self._room_factor()
        calls = rate * span * room
        slot_seconds = slots * span * room
        pairs = [(s, h) for _, s, h in demand]
        if len(pairs) <= calls and sum(h for _, h in pairs) <= slot_seconds:
            return Prices(0.0, 0.0)
        # Concurrency alone: take the most saving per slot-second until the slot-seconds are
        # spent; the price per second is the marginal request's.
        by_yield = sorted(pairs, key=lambda p: -p[0] / p[1] if p[1] > 0 else -math.inf)
        per_second, taken, held = 0.0, 0, 0.0
        for s, h in by_yield:
            if held + h > slot_seconds:
                per_second = s / h if h > 0 else math.inf
                break
            taken += 1
            held += h
        if taken <= calls:
            return Prices(0.0, per_second)
        # The rate alone: the saving of the marginal call.
        limit = int(calls)
        top = heapq.nlargest(limit + 1, pairs)
        if sum(h for _, h in top[:limit]) <= slot_seconds:
            return Prices(top[limit][0] if len(top) > limit else 0.0, 0.0)
        # Both bind: the lowest price per second whose best `calls` requests fit the
        # slot-seconds; the price per call is then the next request's net saving.
        def best(p: float) -> list[tuple[float, float]]:
            return heapq.nlargest(limit + 1, ((s - p * h, h) for s, h in pairs if s - p * h > 0))

        low, high = 0.0, per_second
        for _ in range(_SEARCH_STEPS):
            mid = (low + high) / 2
            if sum(h for _, h in best(mid)[:limit]) <= slot_seconds:
                high = mid
            else:
                low = mid
        chosen = best(high)
        return Prices(max(0.0, chosen[limit][0]) if len(chosen) > limit else 0.0, high)

    def _room_factor(self) -> float:
        """More calls while the keys have room to spare right now, fewer as they fill: the prices
        fall when capacity goes unused and rise before the keys refuse."""
        keys = self.board.keys(self.group)
        if not keys:
            return 1.0
        spare = sum(k.spare() for k in keys) / len(keys)
        full, empty = self.room
        return full + (empty - full) * spare

    def state(self) -> AllocatorState:
        now = self._clock()
        prices = self.prices(now)
        span = min(self.window, max(now - (self._first_seen or now), 1.0))
        rate, slots = self.capacity()
        hold = self.board.mean_hold(self.group) or DEFAULT_HOLD
        per_minute = min(rate, slots / hold) * 60.0
        return AllocatorState(
            per_call_usd=prices.per_call,
            per_second_usd=prices.per_second,
            capacity_calls_per_minute=per_minute,
            demand_per_minute=len(self._demand) / span * 60.0,
            admitted=self.admitted,
            held_back=self.held_back,
        )
