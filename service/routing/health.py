"""Per-route circuit breakers, cool-downs and latency, shared by every request in a process."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from service.errors import ErrorKind

CLOSED, HALF_OPEN, OPEN = 0, 1, 2

# A marketplace's empty balance or spending limit will not mend itself in seconds.
_LONG_COOLDOWN_KINDS = {ErrorKind.INSUFFICIENT_BALANCE, ErrorKind.SPENDING_LIMIT}
_IMMEDIATE_KINDS = _LONG_COOLDOWN_KINDS | {ErrorKind.OPERATOR_AUTH}


@dataclass(slots=True)
class BreakerConfig:
    window_seconds: float = 60.0
    min_failures: int = 5
    failure_ratio: float = 0.5
    cooldown_seconds: float = 15.0
    max_cooldown_seconds: float = 300.0
    long_cooldown_seconds: float = 300.0


@dataclass(slots=True)
class RouteHealth:
    state: int = CLOSED
    open_until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, ok)
    failed: int = 0  # failures among `outcomes`, kept as they come and go (read on every plan)
    latency_ema: float | None = None
    ttft_ema: float | None = None
    tokens_per_second_ema: float | None = None  # output tokens over the time after the first token

    def failures(self) -> int:
        return self.failed


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """A route's health as read by operators (GET /admin/routes)."""

    circuit: str  # closed, half_open or open
    open_for_seconds: float  # until an open circuit lets a probe through; 0 otherwise
    probing: bool  # a half-open circuit's one probe is in flight
    recent_failures: int  # failed attempts within the breaker's window
    recent_attempts: int
    latency_seconds: float | None
    ttft_seconds: float | None
    tokens_per_second: float | None


def _ema(average: float | None, value: float) -> float:
    return value if average is None else 0.8 * average + 0.2 * value


# Answers shorter than this say more about the first token than about the pace after it.
_MIN_RATE_TOKENS = 16
_BUFFERED_SHARE = 0.05


def _tokens_per_second(latency: float | None, ttft: float | None, output_tokens: int | None) -> float | None:
    """Decoding pace: the tokens after the first over the time after it (the whole call when the
    answer came in one piece, as the marketplaces' buffered ones do)."""
    if latency is None or output_tokens is None or output_tokens < _MIN_RATE_TOKENS:
        return None
    after_first = latency - ttft if ttft is not None else latency
    if after_first < _BUFFERED_SHARE * latency:
        # The first token came with the rest (a buffered answer): only the whole call tells a pace.
        after_first = latency
    if after_first <= 0:
        return None
    return output_tokens / after_first


class HealthBoard:
    def __init__(self, config: BreakerConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or BreakerConfig()
        self._routes: dict[str, RouteHealth] = {}
        self._clock = clock
        # (route name, new state): the metrics hook, told of every change of state.
        self.on_change: Callable[[str, int], None] | None = None

    def _get(self, route: str) -> RouteHealth:
        health = self._routes.get(route)
        if health is None:
            health = self._routes[route] = RouteHealth()
        return health

    def state(self, route: str) -> int:
        health = self._routes.get(route)
        if health is None or health.state == CLOSED:
            return CLOSED
        if health.state == OPEN and self._clock() >= health.open_until:
            self._set(route, health, HALF_OPEN)
        return health.state

    def available(self, route: str) -> tuple[bool, str | None]:
        """May a request be sent on this route now? Half-open lets one probe through."""
        state = self.state(route)
        if state == CLOSED:
            return True, None
        health = self._routes[route]
        if state == OPEN:
            return False, f"circuit open for {max(0.0, health.open_until - self._clock()):.0f} s"
        if health.probing:
            return False, "circuit half-open, probe in flight"
        return True, None

    def begin(self, route: str) -> None:
        health = self._routes.get(route)
        if health is not None and health.state == HALF_OPEN:
            health.probing = True

    def success(self, route: str, latency: float | None = None, ttft: float | None = None,
                output_tokens: int | None = None) -> None:
        health = self._get(route)
        now = self._clock()
        self._record(health, now, True)
        if latency is not None:
            health.latency_ema = _ema(health.latency_ema, latency)
        if ttft is not None:
            health.ttft_ema = _ema(health.ttft_ema, ttft)
        rate = _tokens_per_second(latency, ttft, output_tokens)
        if rate is not None:
            health.tokens_per_second_ema = _ema(health.tokens_per_second_ema, rate)
        if health.state != CLOSED:
            health.cooldown = 0.0
            health.probing = False
            health.outcomes.clear()
            health.failed = 0
            self._set(route, health, CLOSED)

    def failure(self, route: str, kind: ErrorKind, retry_after: float | None = None) -> None:
        cfg = self.config
        health = self._get(route)
        now = self._clock()
        self._record(health, now, False)
        health.probing = False
        if kind in _LONG_COOLDOWN_KINDS:
            self._open(route, health, now, max(cfg.long_cooldown_seconds, retry_after or 0))
            return
        if retry_after is not None and kind == ErrorKind.RATE_LIMITED:
            self._open(route, health, now, min(retry_after, cfg.max_cooldown_seconds))
            return
        if kind in _IMMEDIATE_KINDS or health.state == HALF_OPEN:
            self._open(route, health, now, None)
            return
        failures = health.failures()
        if failures >= cfg.min_failures and failures / len(health.outcomes) >= cfg.failure_ratio:
            self._open(route, health, now, None)

    def neutral(self, route: str) -> None:
        """An attempt that ended for the client's reasons (bad request, disconnect)."""
        health = self._routes.get(route)
        if health is not None:
            health.probing = False

    def _open(self, route: str, health: RouteHealth, now: float, duration: float | None) -> None:
        cfg = self.config
        if duration is None:
            health.cooldown = min(cfg.max_cooldown_seconds, (health.cooldown * 2) or cfg.cooldown_seconds)
            duration = health.cooldown
        health.open_until = now + duration
        self._set(route, health, OPEN)

    def _record(self, health: RouteHealth, now: float, ok: bool) -> None:
        outcomes = health.outcomes
        outcomes.append((now, ok))
        if not ok:
            health.failed += 1
        horizon = now - self.config.window_seconds
        while outcomes and (outcomes[0][0] < horizon or len(outcomes) > 200):
            _, was_ok = outcomes.popleft()
            if not was_ok:
                health.failed -= 1

    def _set(self, route: str, health: RouteHealth, state: int) -> None:
        if health.state != state:
            health.state = state
            if self.on_change is not None:
                self.on_change(route, state)

    def reset(self, route: str | None = None) -> list[str]:
        """Forget one route's history, or every route's (operators' manual reset; tests): its
        circuit closes and its failures and measurements start over. Returns the routes that had
        any history to forget."""
        names = list(self._routes) if route is None else [route] if route in self._routes else []
        for name in names:
            health = self._routes.pop(name)
            if health.state != CLOSED and self.on_change is not None:
                self.on_change(name, CLOSED)
        return names

    def status(self, route: str) -> RouteStatus:
        """What this process knows of a route now: its circuit and the outcomes in the window."""
        state = self.state(route)  # first: an open circuit whose cool-down ended reads half-open
        health = self._routes.get(route)
        if health is None:
            return RouteStatus(("closed", "half_open", "open")[state], 0.0, False, 0, 0, None, None, None)
        horizon = self._clock() - self.config.window_seconds
        recent = [ok for moment, ok in health.outcomes if moment >= horizon]
        open_for = max(0.0, health.open_until - self._clock()) if state == OPEN else 0.0
        return RouteStatus(("closed", "half_open", "open")[state], open_for, health.probing,
                           sum(1 for ok in recent if not ok), len(recent), health.latency_ema, health.ttft_ema,
                           health.tokens_per_second_ema)

    def latency(self, route: str) -> float | None:
        health = self._routes.get(route)
        return health.latency_ema if health else None

    def ttft(self, route: str) -> float | None:
        health = self._routes.get(route)
        return health.ttft_ema if health else None

    def tokens_per_second(self, route: str) -> float | None:
        """Measured output tokens a second after the first token (moving average), None unmeasured."""
        health = self._routes.get(route)
        return health.tokens_per_second_ema if health else None

    def failure_rate(self, route: str) -> float:
        health = self._routes.get(route)
        if not health or not health.failed:
            return 0.0
        return health.failed / len(health.outcomes)
