"""Client-side limits for a marketplace key: requests per minute and calls in flight.

The gateway checks these before calling, so it spills to another route instead of provoking the
marketplace's own 429 (xpay: 60 requests a minute and 10 concurrent per key). Everything here runs
on one event loop and never awaits, so no lock is needed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Self


class Permit:
    """One admitted call. Release it when the call ends, however it ends; releasing twice is harmless."""

    __slots__ = ("_limiter", "_released")

    def __init__(self, limiter: ClientRateLimiter) -> None:
        self._limiter = limiter
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._in_flight -= 1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ClientRateLimiter:
    """A sliding-window requests-per-minute limit plus a concurrency cap, both non-blocking.

    `margin` widens the window a little: the server stamps a request when it arrives, later than we
    stamp it when we send, so a window of exactly 60 s here could still let the server count 61.
    """

    def __init__(
        self,
        rpm: int | None,
        concurrency: int | None,
        *,
        window: float = 60.0,
        margin: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rpm is not None and rpm < 1:
            raise ValueError("rpm must be at least 1 (or None for no limit)")
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1 (or None for no limit)")
        self.rpm = rpm
        self.concurrency = concurrency
        self._window = window + margin
        self._clock = clock
        self._starts: deque[float] = deque()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        while self._starts and self._starts[0] <= horizon:
            self._starts.popleft()

    def used(self) -> int:
        """Calls started within the current window."""
        self._expire(self._clock())
        return len(self._starts)

    def try_acquire(self) -> Permit | None:
        """Admit one call now, or return None at once when either limit is reached."""
        now = self._clock()
        self._expire(now)
        if self.concurrency is not None and self._in_flight >= self.concurrency:
            return None
        if self.rpm is not None and len(self._starts) >= self.rpm:
            return None
        self._starts.append(now)
        self._in_flight += 1
        return Permit(self)

    def retry_after(self) -> float:
        """Seconds until a call could be admitted (0 when one could be now).

        A full window frees up when its oldest call leaves it; a full concurrency cap frees up when a
        call ends, which cannot be known, so it reports one second as a hint.
        """
        now = self._clock()
        self._expire(now)
        wait = 0.0
        if self.rpm is not None and len(self._starts) >= self.rpm:
            wait = max(wait, self._starts[0] + self._window - now)
        if self.concurrency is not None and self._in_flight >= self.concurrency:
            wait = max(wait, 1.0)
        return wait
