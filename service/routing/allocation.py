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
spare. The slots' price counts arrivals over the last minute only (a burst lasts minutes, and a
count over the whole window trails it), the savings over the whole window. A call's hold is
predicted from its prompt and expected answer (seconds = a + b x prompt + c x output, fitted to the
calls served), since the longest calls, often the long answers, tie a slot up for a minute for the
same flat fee.

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
from service.routing.least_squares import DecayingLeastSquares
from service.routing.slot_value import slot_costs

WINDOW = 300.0
# Demand below this share of the capacity takes every saving: the keys are idle often enough.
TARGET_USE = 0.5
# Plan the rate's calls to this share of it: headroom for a burst within the minute.
RATE_USE = 0.95
# The loss model frees a slot at the rate of the demand's mean hold, but the calls taken are the
# ones saving most per second held, shorter than the average: slots free sooner than it assumes,
# so a busy slot costs this share of what it computes (0.5-0.7 did best on the capacity benchmark's
# seeds; 1.0 left slots idle).
SLOT_COST_SHARE = 0.7
# The slots' price reads the arrival rate from the last minute only (the rewards from the whole
# window): bursts last minutes, and a rate over the window trails them.
RATE_SECONDS = 60.0
# Before calls have been timed, a call is assumed to hold its slot this long (xpay answers are buffered).
DEFAULT_HOLD = 10.0
# Recompute the prices at most this often: cheap, but not on every request.
RECOMPUTE_SECONDS = 2.0
# Calls timed before the fitted hold is used instead of the mean.
MIN_FIT_CALLS = 30
_FORGET = 0.998  # per timed call: the fit follows the last thousand calls or so
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
        self._fit = DecayingLeastSquares(3, _FORGET)
        self.calls = 0
        self._mean = 0.0
        self._coef: tuple[float, ...] | None = None

    def observe(self, prompt_tokens: int, output_tokens: int, seconds: float) -> None:
        self._fit.add((1.0, prompt_tokens * self._SCALE[1], output_tokens * self._SCALE[2]), seconds)
        self.calls += 1
        self._mean += (seconds - self._mean) / min(self.calls, 1_000)
        self._coef = None

    def predict(self, prompt_tokens: int, output_tokens: int, default: float) -> float:
        if self.calls < MIN_FIT_CALLS:
            return self._mean if self.calls else default
        if self._coef is None:
            self._coef = self._fit.solve(ridge=1e-6) or (self._mean, 0.0, 0.0)
        a, b, c = self._coef
        seconds = a + b * prompt_tokens * self._SCALE[1] + c * output_tokens * self._SCALE[2]
        # Never below a tenth of the mean: a fit is not to be trusted outside what it saw.
        return max(seconds, 0.1 * self._mean)


class FlatFeeAllocator:
    """The prices for one capacity group (a pool of keys on a CapacityBoard)."""

    def __init__(self, board: CapacityBoard, group: str, *, clock: Clock = time.monotonic,
                 window_seconds: float = WINDOW, target_use: float = TARGET_USE) -> None:
        self.board = board
        self.group = group
        self._clock = clock
        self.window = window_seconds
        self.target_use = target_use
        self.holds = HoldModel()  # every call of the pool, for routes with few calls of their own
        self._route_holds: dict[str, HoldModel] = {}
        self._demand: deque[tuple[float, float, float]] = deque()  # (time, saving, expected hold)
        self._first_seen: float | None = None
        self._per_call = 0.0
        self._slot_costs: list[float] = []  # by busy slots: what one more costs, per average hold
        self._mean_hold = DEFAULT_HOLD
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
        # A request with no other route takes the flat fee whatever the prices.
        admit = math.isinf(saving) or saving > self._threshold(now, hold)
        if count:
            if admit:
                self.admitted += 1
            else:
                self.held_back += 1
        return admit

    # ---- the prices -----------------------------------------------------------------------
    def prices(self, now: float | None = None) -> Prices:
        """The prices now: per call for the rate, per slot-second at the pool's current occupancy."""
        now = self._clock() if now is None else now
        self._refresh(now)
        costs = self._slot_costs
        if not costs:
            return Prices(self._per_call, 0.0)
        return Prices(self._per_call, SLOT_COST_SHARE * costs[min(self._busy(), len(costs) - 1)] / self._mean_hold)

    def _threshold(self, now: float, hold: float) -> float:
        """The saving a request holding a slot `hold` seconds must beat to take the flat fee now."""
        self._refresh(now)
        costs = self._slot_costs
        if not costs:
            return self._per_call
        slot = SLOT_COST_SHARE * costs[min(self._busy(), len(costs) - 1)] * hold / self._mean_hold
        # The rate and the slots are priced apart; the binding one decides.
        return max(self._per_call, slot)

    def _refresh(self, now: float) -> None:
        if now - self._computed_at < RECOMPUTE_SECONDS:
            return
        self._computed_at = now
        horizon = now - self.window
        while self._demand and self._demand[0][0] <= horizon:
            self._demand.popleft()
        self._per_call, self._slot_costs, self._mean_hold = 0.0, [], DEFAULT_HOLD
        demand = self._demand
        if not demand or self._first_seen is None:
            return
        rate, slots = self.capacity()
        start = self._first_seen if len(demand) < MAX_DEMAND else demand[0][0]
        span = min(self.window, max(now - start, WINDOW_SECONDS))
        calls = rate * span * RATE_USE
        held = sum(h for _, _, h in demand)
        if len(demand) <= rate * span * self.target_use and held <= slots * span * self.target_use:
            return  # the demand fits with room to spare: every saving is worth a call
        finite = [s for _, s, _ in demand if not math.isinf(s)]
        top = max(finite, default=0.0)
        if len(demand) > calls:
            # The rate alone: the saving of the marginal call among the window's best `calls`.
            best = heapq.nlargest(int(calls) + 1, finite)
            self._per_call = best[int(calls)] if len(best) > int(calls) else 0.0
        if math.isinf(slots):
            return
        # The slots: what one more busy slot costs at each occupancy, with each request's saving
        # counted per average hold (a call twice as long uses the slot of two). A request with no
        # other route is taken anyway; it counts as worth as much as the best.
        mean_hold = held / len(demand)
        rewards = [(top if math.isinf(s) else s) * mean_hold / h if h > 0 else top for _, s, h in demand]
        self._mean_hold = mean_hold
        recent = min(span, RATE_SECONDS)
        arrivals = sum(1 for t, _, _ in demand if t > now - recent) / recent
        self._slot_costs = slot_costs(rewards, arrivals, mean_hold, int(slots))

    def _busy(self) -> int:
        return sum(k.inflight for k in self.board.keys(self.group))

    def capacity(self) -> tuple[float, float]:
        """(calls a second, slots) of the pool: every key's rate and concurrency (inf: unlimited)."""
        keys = self.board.keys(self.group)
        if not keys:
            return math.inf, math.inf
        rate = sum(k.rpm / WINDOW_SECONDS if k.rpm is not None else math.inf for k in keys)
        slots = sum(float(k.concurrency) if k.concurrency is not None else math.inf for k in keys)
        return rate, slots

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
