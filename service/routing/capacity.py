"""Capacity per limit group (a marketplace key, or a route): concurrent calls and calls a minute.

xpay's limits are per API key, so every xpay route shares one group; the router checks
room before planning a route and holds a slot for the call's duration, so Switchyard
spills to the next route instead of provoking the marketplace's 429s.
"""

from __future__ import annotations

import time
from collections import deque


class Limiter:
    def __init__(self, rpm: int | None, concurrency: int | None, clock=time.monotonic) -> None:
        self.rpm = rpm
        self.concurrency = concurrency
        self.inflight = 0
        self._starts: deque[float] = deque()
        self._clock = clock

    def _trim(self, now: float) -> None:
        starts = self._starts
        while starts and starts[0] <= now - 60.0:
            starts.popleft()

    def has_room(self) -> bool:
        if self.concurrency is not None and self.inflight >= self.concurrency:
            return False
        if self.rpm is not None:
            self._trim(self._clock())
            if len(self._starts) >= self.rpm:
                return False
        return True

    def acquire(self) -> bool:
        if not self.has_room():
            return False
        self.inflight += 1
        if self.rpm is not None:
            self._starts.append(self._clock())
        return True

    def release(self) -> None:
        self.inflight = max(0, self.inflight - 1)

    def retry_after(self) -> float:
        if self.rpm is not None and len(self._starts) >= self.rpm and self._starts:
            return max(0.0, self._starts[0] + 60.0 - self._clock())
        return 1.0


class CapacityBoard:
    def __init__(self) -> None:
        self._groups: dict[str, Limiter] = {}
        self._inflight: dict[str, int] = {}

    def configure(self, group: str, rpm: int | None, concurrency: int | None) -> None:
        self._groups[group] = Limiter(rpm, concurrency)

    def group(self, group: str) -> Limiter | None:
        return self._groups.get(group)

    def has_room(self, group: str) -> bool:
        limiter = self._groups.get(group)
        return limiter is None or limiter.has_room()

    def acquire(self, group: str, route: str) -> bool:
        limiter = self._groups.get(group)
        if limiter is not None and not limiter.acquire():
            return False
        self._inflight[route] = self._inflight.get(route, 0) + 1
        return True

    def release(self, group: str, route: str) -> None:
        limiter = self._groups.get(group)
        if limiter is not None:
            limiter.release()
        self._inflight[route] = max(0, self._inflight.get(route, 1) - 1)

    def inflight(self, route: str) -> int:
        return self._inflight.get(route, 0)
