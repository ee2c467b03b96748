"""One benchmark run: per load, the trace, the two online policies in lockstep, the oracle, the figures."""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from benchmarks.capacity import oracle, reference
from benchmarks.capacity.prices import Prices
from benchmarks.capacity.simulate import OnlinePolicy, PolicyTally, SimClock
from benchmarks.capacity.text import SEGMENTS_PER_KIND, Corpus, build_corpus
from benchmarks.capacity.trace import (
    AUTO,
    Request,
    Shape,
    Truth,
    _named_models,
    build_requests,
    build_shape,
    make_request,
)
from benchmarks.trace import POPULARITY
from service.catalog.loader import load_catalog
from service.catalog.model import Catalog, Model
from service.chat.validate import validate_chat_request
from service.routing.capacity import KeyLimits
from service.routing.needs import derive_needs

FLAT_FEE = Decimal("0.01")
# A request with no route but the flat fee: worth more to the oracle than any saving.
NO_ALTERNATIVE_SAVING = 10.0
PILOT_REQUESTS = 3_000


@dataclass(frozen=True, slots=True)
class Config:
    seed: int = 1
    hours: float = 2.0
    loads: tuple[float, ...] = (0.5, 1.0, 3.0, 6.0)
    keys: int = 1
    rpm: int = 60
    concurrency: int = 10
    markup: Decimal = Decimal("1.0")
    oracle_seconds: float = 120.0
    diagnose: bool = False
    # The size of the text pool and of the sample that turns a load into a rate (smaller: faster, rougher).
    segments_per_kind: int = SEGMENTS_PER_KIND
    pilot_requests: int = PILOT_REQUESTS


@dataclass(frozen=True, slots=True)
class Best:
    """A request's true options: its cheapest route without the flat fee, and the flat fee."""

    alternative: Decimal | None  # None: no route but the flat fee
    flat_seconds: float | None  # the flat-fee call's duration; None: the flat fee cannot serve it
    baseline: Decimal | None  # Baseten direct (`auto`: the lowest unit price), None: no Baseten price

    @property
    def saving(self) -> float:
        if self.flat_seconds is None:
            return 0.0
        if self.alternative is None:
            return NO_ALTERNATIVE_SAVING
        return float(self.alternative - FLAT_FEE)


class World:
    """What one seed fixes: catalog, text, shape and truth."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.catalog: Catalog = load_catalog()
        self.corpus: Corpus = build_corpus(config.seed, config.segments_per_kind)
        self.shape: Shape = build_shape(self.catalog, config.seed, config.hours)
        self.truth = Truth(self.shape)
        self.prices = Prices(config.markup)

    def best(self, req: Request) -> Best:
        alternative: Decimal | None = None
        flat_seconds: float | None = None
        unit_price: tuple[Decimal, Model] | None = None
        for model_id in self.eligible(req.model):
            model = self.catalog.models[model_id]
            if not self.serves(model, req):
                continue
            usage = None
            for route in self.catalog.routes_for(model_id):
                if req.stops > route.max_stop:
                    continue
                usage = usage or self.truth.usage(req, model)
                if route.pricing.kind == "flat":
                    flat_seconds = usage.seconds if flat_seconds is None else min(flat_seconds, usage.seconds)
                    continue
                cost = self.prices.cost(route, usage)
                if cost is not None and (alternative is None or cost < alternative):
                    alternative = cost
                if route.front_end == "baseten" and route.pricing.kind == "per_token":
                    unit = route.pricing.input_per_mtok + route.pricing.output_per_mtok
                    if unit_price is None or unit < unit_price[0]:
                        unit_price = (unit, model)
        baseline = None
        if req.model != AUTO:
            direct = self.catalog.find_route("baseten", req.model)
            if direct is not None and direct.pricing.kind == "per_token":
                baseline = self.prices.cost(direct, self.truth.usage(req, self.catalog.models[req.model]))
        elif unit_price is not None:
            # `auto` has no named model: a unit-price router's pick (LiteLLM's cost-based routing).
            direct = self.catalog.find_route("baseten", unit_price[1].id)
            baseline = self.prices.cost(direct, self.truth.usage(req, unit_price[1]))
        return Best(alternative, flat_seconds, baseline)

    def eligible(self, requested: str) -> tuple[str, ...]:
        """The models a request may be served by (Planner.models_for without a tenant policy)."""
        if requested == AUTO:
            return tuple(self.catalog.models)
        return self.catalog.pools.get(requested, (requested,))

    def serves(self, model: Model, req: Request) -> bool:
        """Features and true size: what the upstream itself would accept."""
        f = model.features
        if req.tools and not (f.tools and f.tool_calling_recommended):
            return False
        if req.json_schema and not f.structured_outputs:
            return False
        if req.images and not f.vision:
            return False
        if req.reasoning_effort is not None and req.reasoning_effort not in f.reasoning_efforts:
            return False
        if req.max_tokens is not None and req.max_tokens > model.max_output_tokens:
            return False
        return self.truth.fits(req, model)

    def pilot(self) -> tuple[float, float]:
        """The share of requests the flat fee truly serves cheapest, and the mean duration of
        their calls, from a sample of the trace's requests: what turns a load into a rate."""
        rng = random.Random(f"pilot-{self.config.seed}")
        named = _named_models(self.catalog)
        weights = [POPULARITY.get(m, 1.0) for m in named]
        vision = [m for m in named if self.catalog.models[m].features.vision]
        flat, seconds = 0, 0.0
        for i in range(self.config.pilot_requests):
            req = make_request(rng, self.catalog, self.corpus, self.shape, self.truth, i, 0.0,
                               rng.randrange(len(self.shape.tenants)), named, weights, vision)
            best = self.best(req)
            if best.saving > 0 and best.flat_seconds is not None:
                flat += 1
                seconds += best.flat_seconds
        return flat / self.config.pilot_requests, seconds / max(flat, 1)

    def capacity_per_minute(self, mean_seconds: float) -> float:
        c = self.config
        return c.keys * min(float(c.rpm), c.concurrency * 60.0 / mean_seconds)


def run(config: Config, progress: Any = None) -> dict[str, Any]:
    started = time.perf_counter()
    world = World(config)
    share, mean_seconds = world.pilot()
    capacity = world.capacity_per_minute(mean_seconds)
    result: dict[str, Any] = {
        "config": {"seed": config.seed, "hours": config.hours, "loads": list(config.loads), "keys": config.keys,
                   "rpm_per_key": config.rpm, "concurrency_per_key": config.concurrency,
                   "orthogonal_markup": str(config.markup)},
        "shape": world.shape.describe(),
        "calibration": {"flat_fee_share": round(share, 4), "mean_flat_call_seconds": round(mean_seconds, 2),
                        "capacity_per_minute": round(capacity, 2)},
        "loads": [],
        "seconds": {"setup": round(time.perf_counter() - started, 1)},
    }
    for load in config.loads:
        per_minute = load * capacity / share
        row = run_load(world, load, per_minute, progress)
        result["loads"].append(row)
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    return result


def run_load(world: World, load: float, per_minute: float, progress: Any = None) -> dict[str, Any]:
    config = world.config
    began = time.perf_counter()
    requests = build_requests(world.catalog, world.corpus, world.shape, world.truth, per_minute, config.seed)
    built = time.perf_counter() - began
    clock = SimClock()
    keys = [KeyLimits(config.rpm, config.concurrency)] * config.keys
    greedy = OnlinePolicy("greedy", world.catalog, clock, keys, world.prices, world.truth,
                          allocate=False, learn_quotes=False)
    shadow = OnlinePolicy("shadow price", world.catalog, clock, keys, world.prices, world.truth,
                          allocate=True, learn_quotes=True)
    policies: tuple[OnlinePolicy, ...] = (greedy, shadow)
    if config.diagnose:
        # The planner with no limits at all: what estimation alone costs against the unlimited oracle.
        policies += (OnlinePolicy("planner, no limits", world.catalog, clock, [KeyLimits(None, None)], world.prices,
                                  world.truth, allocate=False, learn_quotes=True),)
    next_sample = 0.0
    for req in requests:
        body = req.body(world.corpus, world.shape)
        view = validate_chat_request(body)
        needs = derive_needs(body, view)
        for policy in policies:
            policy.advance(req.at)
            policy.serve(req, view, needs)
        if req.at >= next_sample:
            shadow.sample_threshold()
            next_sample += 60.0
    simulated = time.perf_counter() - began - built
    bests = [world.best(r) for r in requests]
    # The figures compare the requests every online policy served. A request some policy left unserved
    # (the flat fee was its only route and xpay was full) is kept from the oracle too: spending capacity
    # on it would make the oracle's figure over the compared requests no lower bound at all.
    refused = {i for i in range(len(requests)) if any(i not in p.tally.cost for p in policies)}
    candidates = [i for i, b in enumerate(bests) if b.saving > 0 and i not in refused]
    choice = oracle.allocate([requests[i].at for i in candidates], [bests[i].flat_seconds or 0.0 for i in candidates],
                             [bests[i].saving for i in candidates], config.rpm * config.keys,
                             config.concurrency * config.keys, time_limit=config.oracle_seconds)
    oracle.check([requests[i].at for i in candidates], [bests[i].flat_seconds or 0.0 for i in candidates],
                 choice.chosen, config.rpm * config.keys, config.concurrency * config.keys)
    takes_flat = {candidates[k] for k, taken in enumerate(choice.chosen) if taken}
    row = figures(world, load, per_minute, requests, bests, takes_flat, policies)
    row["where_lost"] = where_lost(bests, takes_flat, shadow.tally)
    row["online_reference"] = online_reference(requests, bests, candidates, choice.chosen, config,
                                               Decimal(row["policies"]["oracle"]["cost_usd"]))
    row["oracle_solver"] = {"status": choice.status, "seconds": round(choice.seconds, 1),
                            "candidates": len(candidates),
                            "bound_saving_usd": round(choice.bound, 4), "milp_saving_usd": round(choice.saving, 4)}
    row["seconds"] = {"trace": round(built, 1), "simulate": round(simulated, 1),
                      "oracle": round(choice.seconds, 1)}
    if progress is not None:
        progress(row)
    return row


def online_reference(requests: list[Request], bests: list[Best], candidates: list[int], oracle_chosen: list[bool],
                     config: Config, oracle_cost: Decimal) -> dict[str, Any]:
    """The reference rule (reference.py) on the requests with a route besides the flat fee, against
    the oracle's choice among the same: what deciding at arrival costs even knowing each request."""
    kept = [k for k, i in enumerate(candidates) if bests[i].alternative is not None]
    starts = [requests[candidates[k]].at for k in kept]
    durations = [bests[candidates[k]].flat_seconds or 0.0 for k in kept]
    savings = [bests[candidates[k]].saving for k in kept]
    chosen = [oracle_chosen[k] for k in kept]
    best = reference.best_online(starts, durations, savings, chosen, config.rpm * config.keys,
                                 config.concurrency * config.keys)
    oracle_saving = sum(s for s, taken in zip(savings, chosen, strict=True) if taken)
    short = oracle_saving - best.saving
    return {
        "share_of_oracle_flat_saving_pct": round(best.saving / oracle_saving * 100, 2) if oracle_saving else 100.0,
        "flat_saving_short_usd": round(short, 4),
        "gap_to_oracle_pct": round(short / float(oracle_cost) * 100, 2) if oracle_cost else 0.0,
        "flat_fee_calls": sum(best.chosen),
        "scale": best.scale,
        "occupancy_power": best.power,
    }


def where_lost(bests: list[Best], takes_flat: set[int], tally: PolicyTally) -> dict[str, Any]:
    """Where the allocator's flat-fee saving falls short of the oracle's, over the requests with a
    route besides the flat fee: the oracle's calls it did not make, split by whether its plan found
    the pool full or priced the call out, against its calls the oracle did not make; and the saving
    per second held of the calls a full pool turned away against its own."""
    def saving(indices: set[int]) -> float:
        return round(sum(bests[i].saving for i in indices), 2)

    def median_density(indices: set[int]) -> float | None:
        densities = [bests[i].saving / bests[i].flat_seconds for i in indices if bests[i].flat_seconds]
        return round(statistics.median(densities), 5) if densities else None

    priced = {i for i, b in enumerate(bests) if b.alternative is not None and b.flat_seconds is not None}
    missed = (takes_flat - tally.took_flat) & priced
    full = missed & tally.found_full
    priced_out = missed - full
    extra = (tally.took_flat - takes_flat) & priced
    return {
        "full_pool": {"requests": len(full), "saving_usd": saving(full)},
        "priced_out": {"requests": len(priced_out), "saving_usd": saving(priced_out)},
        "taken_instead": {"requests": len(extra), "saving_usd": saving(extra)},
        "median_usd_per_second": {"full_pool": median_density(full),
                                  "allocator": median_density(tally.took_flat & priced)},
    }


def figures(world: World, load: float, per_minute: float, requests: list[Request], bests: list[Any],
            takes_flat: set[int], policies: tuple[OnlinePolicy, ...]) -> dict[str, Any]:
    oracle_cost: dict[int, Decimal] = {}
    unbounded_cost: dict[int, Decimal] = {}
    for i, best in enumerate(bests):
        if i in takes_flat:
            oracle_cost[i] = FLAT_FEE
        elif best.alternative is not None:
            oracle_cost[i] = best.alternative
        options = [c for c in (best.alternative, FLAT_FEE if best.flat_seconds is not None else None) if c is not None]
        if options:
            unbounded_cost[i] = min(options)
    served = set(oracle_cost) & set(unbounded_cost)
    for policy in policies:
        served &= set(policy.tally.cost)
    priced = {i for i in served if bests[i].baseline is not None}
    direct = sum((bests[i].baseline for i in priced), Decimal(0))

    def totals(costs: dict[int, Decimal]) -> tuple[Decimal, Decimal]:
        return sum((costs[i] for i in served), Decimal(0)), sum((costs[i] for i in priced), Decimal(0))

    oracle_all, oracle_priced = totals(oracle_cost)
    columns: dict[str, dict[str, Any]] = {}
    unbounded_flat = sum(1 for b in bests if b.saving > 0)
    for name, costs, flat_calls in (
        [(p.name, p.tally.cost, p.tally.flat_calls) for p in policies]
        + [("oracle", oracle_cost, len(takes_flat)), ("oracle, no limits", unbounded_cost, unbounded_flat)]
    ):
        every, on_priced = totals(costs)
        columns[name] = {
            "cost_usd": _usd(every),
            "savings_vs_direct_pct": _pct(direct - on_priced, direct),
            "gap_to_oracle_pct": _pct(every - oracle_all, oracle_all),
            "share_of_oracle_savings_pct": _pct(direct - on_priced, direct - oracle_priced),
            "flat_fee_calls": flat_calls,
        }
    hours = world.config.hours
    out: dict[str, Any] = {
        "load": load,
        "requests_per_minute": round(per_minute, 1),
        "requests": len(requests),
        "flat_fee_worthy_per_minute": round(sum(1 for b in bests if b.saving > 0 and b.flat_seconds is not None)
                                            / (hours * 60), 1),
        "compared_requests": len(served),
        "direct_cost_usd": _usd(direct),
        "direct_priced_requests": len(priced),
        "policies": columns,
    }
    for policy in policies:
        t = policy.tally
        extra = {"unserved": t.unserved, "plans_with_flat_fee_full": t.wanted_flat_but_full,
                 "attempts_refused_as_too_long": t.context_refused, "front_ends": dict(sorted(t.front_ends.items()))}
        if t.thresholds:
            for i, name in enumerate(("price_per_call_usd", "price_per_second_usd")):
                values = sorted(v[i] for v in t.thresholds)
                extra[name] = {"median": round(statistics.median(values), 6),
                               "p90": round(values[int(0.9 * (len(values) - 1))], 6), "max": round(values[-1], 6)}
        columns[policy.name].update(extra)
    return out


def _usd(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0001")))


def _pct(part: Decimal, whole: Decimal) -> float:
    return round(float(part / whole * 100), 2) if whole else 0.0
