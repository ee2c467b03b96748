"""Synthetic usage rows shaped like the gateway's: real catalog routes and prices, several tenants and days.

Each request is one attempt, except a share that failed once on one route and succeeded on
the next (two rows, as the gateway writes them). Costs follow each route's price kind the way
the adapters compute them: per-token prices exactly, xpay's flat fee, Orthogonal's quote.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from service.catalog.loader import load_catalog
from service.catalog.model import Route
from service.metering.events import UsageEvent
from service.upstreams.base import CostSource

# numeric(20, 10) in the ledger: rows carry exactly what the column stores.
_QUANTUM = Decimal("1E-10")
_MARKUPS = (Decimal("0"), Decimal("0.1"), Decimal("0.2"), Decimal("0.35"))
_RETRIED_SHARE = 0.05
_STREAM_SHARE = 0.6


def ledger_days(today: date, count: int) -> list[date]:
    """Up to `count` days ending today, all in this month: live rows land in the current
    monthly partition, which the migration creates."""
    first = today.replace(day=1)
    return [today - timedelta(days=i) for i in range(count) if today - timedelta(days=i) >= first]


class EventFactory:
    """Makes unique usage rows on demand; the same seed makes the same rows."""

    def __init__(self, *, seed: int = 20261123, tenants: int = 8, keys_per_tenant: int = 3, days: int = 7,
                 today: date | None = None) -> None:
        self._rng = random.Random(seed)
        catalog = load_catalog()
        self.price_version = catalog.version
        priced = ("per_token", "flat", "quoted")
        self.routes: list[Route] = [r for r in catalog.routes if r.pricing.kind in priced]
        if not self.routes:
            raise RuntimeError("the catalog has no priced routes to make usage rows from")
        self.tenants = [(uuid.UUID(int=self._rng.getrandbits(128), version=4), self._rng.choice(_MARKUPS))
                        for _ in range(tenants)]
        self.keys = {t: [uuid.UUID(int=self._rng.getrandbits(128), version=4) for _ in range(keys_per_tenant)]
                     for t, _ in self.tenants}
        self.days = ledger_days(today or datetime.now(UTC).date(), days)
        # Request ids as the gateway makes them (req_ + 32 hex): a run prefix, then a counter.
        self._prefix = f"req_{self._rng.getrandbits(64):016x}"
        self._counter = 0

    def make(self, rows: int) -> list[UsageEvent]:
        """Exactly `rows` rows of new requests (a retried request's two rows stay together)."""
        out: list[UsageEvent] = []
        while len(out) < rows:
            retried = rows - len(out) >= 2 and self._rng.random() < _RETRIED_SHARE
            out.extend(self._request(two_attempts=retried))
        return out

    def _request(self, two_attempts: bool) -> list[UsageEvent]:
        rng = self._rng
        self._counter += 1
        request_id = f"{self._prefix}{self._counter:016x}"
        tenant_id, markup = rng.choice(self.tenants)
        key_id = rng.choice(self.keys[tenant_id])
        day = rng.choice(self.days)
        started = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(86_400), microseconds=rng.randrange(1_000_000))
        stream = rng.random() < _STREAM_SHARE
        requested = rng.choice(self.routes).model
        attempts = []
        for number in range(1, 3 if two_attempts else 2):
            route = rng.choice(self.routes)
            failed = two_attempts and number == 1
            attempts.append(self._attempt(request_id, number, tenant_id, key_id, markup, requested, route,
                                          started, stream, failed))
            started = attempts[-1].ended_at
        return attempts

    def _attempt(self, request_id: str, number: int, tenant_id: uuid.UUID, key_id: uuid.UUID, markup: Decimal,
                 requested: str, route: Route, started: datetime, stream: bool, failed: bool) -> UsageEvent:
        rng = self._rng
        # A long tail: mostly hundreds of prompt tokens, sometimes tens of thousands.
        prompt = int(rng.lognormvariate(7.0, 1.2)) + 1
        cached = prompt // 2 if rng.random() < 0.3 else 0
        completion = 0 if failed else int(rng.lognormvariate(5.5, 1.0)) + 1
        reasoning = completion // 3 if rng.random() < 0.4 else 0
        cost, source = self._cost(route, prompt, completion, cached, failed)
        first_token = None if failed else started + timedelta(milliseconds=rng.randrange(80, 1500))
        ended = (first_token or started) + timedelta(milliseconds=rng.randrange(5, 20_000))
        return UsageEvent(
            request_id=request_id, attempt=number, tenant_id=tenant_id, key_id=key_id,
            requested_model=requested, served_model=route.model, front_end=route.front_end, route=route.name,
            status="error" if failed else "ok", error_code="upstream_error" if failed else None,
            http_status=502 if failed else 200, stream=stream, client_disconnected=False,
            prompt_tokens=0 if failed else prompt, cached_tokens=0 if failed else cached,
            completion_tokens=completion, reasoning_tokens=reasoning,
            provider_cost_usd=cost, billed_usd=(cost * (1 + markup)).quantize(_QUANTUM),
            price_version=self.price_version, cost_source=source, estimated=False,
            upstream_request_id=None if failed else uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            started_at=started, first_token_at=first_token, ended_at=ended,
        )

    def _cost(self, route: Route, prompt: int, completion: int, cached: int,
              failed: bool) -> tuple[Decimal, str]:
        pricing = route.pricing
        if failed:
            return Decimal(0), CostSource.COMPUTED
        if pricing.kind == "per_token":
            return pricing.token_cost(prompt, completion, cached).quantize(_QUANTUM), CostSource.COMPUTED
        if pricing.kind == "flat":
            return pricing.per_call, CostSource.RECEIPT
        # Orthogonal quotes per call; a few tenths of a cent, to the quote's precision.
        return (Decimal(self._rng.randrange(500, 50_000)) / 10_000_000).quantize(_QUANTUM), CostSource.QUOTE
