"""A discrete-event simulation of the gateway's routing under the marketplaces' real limits.

Each online policy owns what a gateway process owns (planner, calibration, health, capacity board
with its pool of keys, and for the new policy the flat-fee allocator and the quote record) and
serves every request the way service/gateway/chat.py does: plan, get Orthogonal quotes where a
quote can change the choice and plan again, then try the first `max_attempts` candidates in order,
holding a capacity slot for each call until the simulated call ends; a route without room is
passed over (the fallback), and so is one whose model refuses the prompt as too long.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from benchmarks.capacity.prices import Prices
from benchmarks.capacity.trace import Request, Truth
from service.catalog.model import FRONT_ENDS, Catalog
from service.routing.allocation import FlatFeeAllocator
from service.routing.capacity import CapacityBoard, KeyLimits, Slot
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.needs import Needs
from service.routing.plan import Plan
from service.routing.planner import Planner, Policy, capacity_group
from service.routing.quotes import QuoteAccuracy

MAX_ATTEMPTS = 3  # the gateway's default (SWITCHYARD_MAX_ATTEMPTS)


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class PolicyTally:
    cost: dict[int, Decimal] = field(default_factory=dict)  # by request index
    flat_calls: int = 0
    front_ends: Counter = field(default_factory=Counter)
    unserved: int = 0
    wanted_flat_but_full: int = 0  # plans whose flat-fee route was excluded for capacity
    found_full: set[int] = field(default_factory=set)  # the requests those plans were for
    took_flat: set[int] = field(default_factory=set)  # the requests served by a flat-fee call
    context_refused: int = 0  # attempts the upstream refused as too long (then fallen back)
    thresholds: list[tuple[float, float]] = field(default_factory=list)  # (per call, per second) USD


class OnlinePolicy:
    def __init__(self, name: str, catalog: Catalog, clock: SimClock, keys: list[KeyLimits], prices: Prices,
                 truth: Truth, *, allocate: bool, learn_quotes: bool) -> None:
        self.name = name
        self.clock = clock
        self.prices = prices
        self.truth = truth
        self.catalog = catalog
        self.board = CapacityBoard(clock=clock)
        self.board.configure_pool("xpay", keys)
        self.health = HealthBoard(clock=clock)
        self.calibration = Calibration()
        self.allocator = FlatFeeAllocator(self.board, "xpay", clock=clock) if allocate else None
        self.quotes = QuoteAccuracy() if learn_quotes else None
        self.planner = Planner(catalog, enabled_front_ends=frozenset(FRONT_ENDS), health=self.health,
                               capacity=self.board, calibration=self.calibration,
                               allocators={"xpay": self.allocator} if self.allocator else None,
                               quote_accuracy=self.quotes)
        self._ends: list[tuple[float, int, Slot, int, int]] = []
        self._sequence = 0
        self.tally = PolicyTally()

    def advance(self, until: float) -> None:
        """End every simulated call that finishes by `until`, releasing its slot at its own time."""
        ends = self._ends
        while ends and ends[0][0] <= until:
            at, _, slot, prompt, completion = heapq.heappop(ends)
            self.clock.now = at
            self.board.release_slot(slot)
            if self.allocator is not None and slot.group == self.allocator.group:
                # As the gateway reports each flat-fee call that ended.
                self.allocator.observe_call(prompt, completion, at - slot.started, slot.route)
        self.clock.now = until

    def serve(self, req: Request, view: Any, needs: Needs) -> None:
        policy = Policy(tenant=req.tenant)
        planner = self.planner
        plan = planner.plan(view.model, needs, view.provider, policy, fallbacks=view.models)
        quotes = self._quotes(plan, req, needs)
        if quotes:
            plan = planner.plan(view.model, needs, view.provider, policy, fallbacks=view.models, quotes=quotes)
        tally = self.tally
        if any(e.code == "at_capacity" for e in plan.excluded):
            tally.wanted_flat_but_full += 1
            tally.found_full.add(req.index)
        for candidate in plan.candidates[:MAX_ATTEMPTS]:
            route = candidate.route
            model = self.catalog.models[route.model]
            if not self.truth.fits(req, model):
                tally.context_refused += 1
                continue
            slot = self.board.acquire_slot(capacity_group(route), route.name)
            if slot is None:
                continue
            usage = self.truth.usage(req, model)
            cost = self.prices.cost(route, usage)
            if cost is None:  # a route with no price is never planned; kept for safety
                self.board.release_slot(slot)
                continue
            self._sequence += 1
            heapq.heappush(self._ends, (self.clock.now + usage.seconds, self._sequence, slot, usage.prompt,
                                        usage.completion))
            tally.cost[req.index] = cost
            tally.front_ends[route.front_end] += 1
            if route.pricing.kind == "flat":
                tally.flat_calls += 1
                tally.took_flat.add(req.index)
            # What the gateway learns from every answer.
            self.calibration.observe(route.model, needs.base_prompt_tokens, usage.prompt, usage.completion,
                                     tenant=req.tenant, cap=needs.worst_output, effort=needs.reasoning_effort)
            self.health.success(route.name, latency=usage.seconds, ttft=usage.ttft, output_tokens=usage.completion)
            if self.quotes is not None and candidate.cost_basis == "quoted" and quotes and route.name in quotes:
                self.quotes.observe(route.name, quotes[route.name], cost, prompt_tokens=usage.prompt,
                                    completion_tokens=usage.completion)
            return
        tally.unserved += 1

    def _quotes(self, plan: Plan, req: Request, needs: Needs) -> dict[str, Decimal]:
        """As ChatGateway._quotes: dry runs only where a quote can change the choice."""
        routes = [c.route for c in plan.candidates[:MAX_ATTEMPTS] if c.cost_basis == "estimated_quote"]
        routes += [r for e in plan.excluded if e.code == "price_unknown" and e.route.startswith("orthogonal:")
                   for r in [self.catalog.find_route("orthogonal", e.route.split(":", 1)[1])] if r is not None]
        out = {}
        for route in routes:
            quote = self.prices.quote(route, req, needs.base_prompt_tokens)
            if quote is not None:
                out[route.name] = quote
        return out

    def sample_threshold(self) -> None:
        if self.allocator is not None:
            prices = self.allocator.prices()
            self.tally.thresholds.append((prices.per_call, prices.per_second))
