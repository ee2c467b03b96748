"""What lets an unknown key be refused without asking the database.

A flood of random well-formed keys must not cost a query each on the pool that budgets and leases
share. Three parts:

- `KeyDirectory`: every prefix a live key may authenticate under. The auth listener loads it when it
  (re)connects and adds each prefix announced on the auth channel; the database itself announces
  every key inserted or re-keyed (a trigger, migration 0010), so no creation path can forget. It may
  hold prefixes that no longer authenticate (revoked since the load): those still go to the
  database, which only costs a lookup. A prefix outside it is unknown as of the last announcement.
- `LookupBudget`: a token bucket for lookups the directory cannot vouch for (a prefix it does not
  hold, which covers an announcement still in flight; or any prefix while it is not loaded).
- `RefusalCache`: prefixes the database refused, size-capped (least recently refused first out) and
  for a short time, so that a client retrying a revoked key does not query either.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable


class KeyDirectory:
    def __init__(self) -> None:
        self._prefixes: set[str] | None = None
        self._announced: set[str] = set()

    @property
    def loaded(self) -> bool:
        return self._prefixes is not None

    def may_exist(self, prefix: str) -> bool | None:
        """Whether a key may have this prefix; None while the directory is not loaded."""
        return None if self._prefixes is None else prefix in self._prefixes

    def unload(self) -> None:
        """Announcements may be missed from now on (the listener is down, or about to load)."""
        self._prefixes = None
        self._announced = set()

    def load(self, prefixes: Iterable[str]) -> None:
        # What was announced while the load ran may postdate the snapshot.
        self._prefixes = set(prefixes) | self._announced
        self._announced = set()

    def announce(self, prefix: str) -> None:
        (self._announced if self._prefixes is None else self._prefixes).add(prefix)

    def __len__(self) -> int:
        return 0 if self._prefixes is None else len(self._prefixes)


class LookupBudget:
    """`rate` lookups a second, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class RefusalCache:
    def __init__(self, size: int, ttl: float) -> None:
        self._size = size
        self._ttl = ttl
        self._until: OrderedDict[str, float] = OrderedDict()

    def refused(self, prefix: str, now: float) -> bool:
        until = self._until.get(prefix)
        if until is None:
            return False
        if until <= now:
            del self._until[prefix]
            return False
        return True

    def add(self, prefix: str, now: float) -> None:
        self._until[prefix] = now + self._ttl
        self._until.move_to_end(prefix)
        while len(self._until) > self._size:
            self._until.popitem(last=False)

    def discard(self, prefix: str) -> None:
        self._until.pop(prefix, None)

    def clear(self) -> None:
        self._until.clear()

    def __len__(self) -> int:
        return len(self._until)
