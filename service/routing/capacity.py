"""Capacity per limit group (a marketplace's pool of keys, or a route): concurrent calls and calls a minute.

xpay's limits are per API key, so every xpay route shares one group, and a group may hold several
keys, each with its own limits. The router checks room before planning a route and holds a slot on
one key for the call's duration, so Switchyard spills to the next route instead of provoking the
marketplace's 429s; the slot says which key to call with.

Several gateway processes each configure their own share of every key's limits (`split_limits`):
the shares are configured, not coordinated, so the processes together never exceed a key's limits.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Clock = Callable[[], float]
WINDOW_SECONDS = 60.0
# How fast the mean holding time follows new calls.
_HOLD_EMA = 0.05


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One key's limits; None is unlimited."""

    rpm: int | None = None
    concurrency: int | None = None


class Limiter:
    def __init__(self, rpm: int | None, concurrency: int | None, clock: Clock = time.monotonic) -> None:
        self.rpm = rpm
        self.concurrency = concurrency
        self.inflight = 0
        self._starts: deque[float] = deque()
        self._clock = clock

    def _trim(self, now: float) -> None:
        starts = self._starts
        while starts and starts[0] <= now - WINDOW_SECONDS:
            starts.popleft()

    def recent_starts(self) -> int:
        """Calls started in the last minute (counted only when the key has a rate limit)."""
        self._trim(self._clock())
        return len(self._starts)

    def has_room(self) -> bool:
        if self.concurrency is not None and self.inflight >= self.concurrency:
            return False
        if self.rpm is not None:
            self._trim(self._clock())
            if len(self._starts) >= self.rpm:
                return False
        return True

    def spare(self) -> float:
        """The smaller of the free fractions of the rate window and of the concurrency (1.0 unlimited)."""
        free = 1.0
        if self.concurrency is not None and self.concurrency > 0:
            free = min(free, 1.0 - self.inflight / self.concurrency)
        if self.rpm is not None and self.rpm > 0:
            free = min(free, 1.0 - self.recent_starts() / self.rpm)
        return max(0.0, free)

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
            return max(0.0, self._starts[0] + WINDOW_SECONDS - self._clock())
        return 1.0


@dataclass(frozen=True, slots=True)
class Slot:
    """A held slot: the group, the route it serves, and which of the group's keys it came from."""

    group: str
    route: str
    key: int
    started: float


class _Pool:
    __slots__ = ("hold_ema", "holds", "keys")

    def __init__(self, keys: list[Limiter]) -> None:
        self.keys = keys
        self.hold_ema: float | None = None
        self.holds = 0

    def record_hold(self, seconds: float) -> None:
        weight = max(_HOLD_EMA, 1.0 / (self.holds + 1))
        self.hold_ema = seconds if self.hold_ema is None else self.hold_ema + weight * (seconds - self.hold_ema)
        self.holds += 1


class CapacityBoard:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._pools: dict[str, _Pool] = {}
        self._inflight: dict[str, int] = {}
        # Slots taken through acquire(), by route, released oldest first by release().
        self._held: dict[str, deque[Slot]] = {}

    def configure(self, group: str, rpm: int | None, concurrency: int | None) -> None:
        """One key for the group."""
        self.configure_pool(group, [KeyLimits(rpm, concurrency)])

    def configure_pool(self, group: str, keys: Sequence[KeyLimits]) -> None:
        """Several keys for one group (e.g. XPAY_API_KEYS); key i of a slot is keys[i]."""
        if not keys:
            raise ValueError(f"capacity group {group!r} needs at least one key")
        self._pools[group] = _Pool([Limiter(k.rpm, k.concurrency, self._clock) for k in keys])

    def group(self, group: str) -> Limiter | None:
        """The group's first key (a one-key group's only one)."""
        pool = self._pools.get(group)
        return pool.keys[0] if pool else None

    def keys(self, group: str) -> tuple[Limiter, ...]:
        pool = self._pools.get(group)
        return tuple(pool.keys) if pool else ()

    def mean_hold(self, group: str) -> float | None:
        """The mean seconds a slot of this group has been held (None before the first release)."""
        pool = self._pools.get(group)
        return pool.hold_ema if pool else None

    def has_room(self, group: str) -> bool:
        pool = self._pools.get(group)
        return pool is None or any(k.has_room() for k in pool.keys)

    def acquire_slot(self, group: str, route: str) -> Slot | None:
        """A slot on the key with the most room, or None when every key is full."""
        pool = self._pools.get(group)
        key = 0
        if pool is not None:
            best = -1.0
            for index, limiter in enumerate(pool.keys):
                if limiter.has_room():
                    spare = limiter.spare()
                    if spare > best:
                        best, key = spare, index
            if best < 0 or not pool.keys[key].acquire():
                return None
        self._inflight[route] = self._inflight.get(route, 0) + 1
        return Slot(group, route, key, self._clock())

    def release_slot(self, slot: Slot) -> None:
        pool = self._pools.get(slot.group)
        if pool is not None:
            pool.keys[slot.key].release()
            pool.record_hold(max(0.0, self._clock() - slot.started))
        self._inflight[slot.route] = max(0, self._inflight.get(slot.route, 1) - 1)

    def acquire(self, group: str, route: str) -> bool:
        """Hold a slot without keeping it: release(group, route) gives back this route's oldest one.
        Exact for one-key groups; with several keys use acquire_slot/release_slot, so the key whose
        count is lowered is the key the call used."""
        slot = self.acquire_slot(group, route)
        if slot is None:
            return False
        self._held.setdefault(route, deque()).append(slot)
        return True

    def release(self, group: str, route: str) -> None:
        held = self._held.get(route)
        if held:
            self.release_slot(held.popleft())
            return
        self._inflight[route] = max(0, self._inflight.get(route, 1) - 1)

    def inflight(self, route: str) -> int:
        return self._inflight.get(route, 0)


def split_limits(keys: Sequence[KeyLimits], processes: int, index: int) -> list[KeyLimits]:
    """Process `index` of `processes`' share of every key: the limits divided evenly, the
    remainders to the first processes, so the shares add up to each key's limits exactly."""
    if processes < 1 or not 0 <= index < processes:
        raise ValueError(f"process {index} of {processes}")

    def share(limit: int | None) -> int | None:
        if limit is None:
            return None
        return limit // processes + (1 if index < limit % processes else 0)

    return [KeyLimits(share(k.rpm), share(k.concurrency)) for k in keys]
