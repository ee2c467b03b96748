"""The routing-cost benchmark: what a synthetic trace costs under three policies, and what planning costs.

Policies, each paying the upstream's true token counts at the chosen route's prices (xpay: its flat
fee; Orthogonal: its quote, modelled as the per-token estimate x ORTHOGONAL_MARKUP):
  (a) baseline: Baseten direct for the named model. For `auto` there is no named model; the
      baseline takes what a unit-price router (LiteLLM's cost-based routing) would: the capable
      model whose Baseten input + output price per token is lowest. Requests whose model has no
      Baseten price are skipped by the baseline and counted.
  (b) Switchyard: the planner as shipped, first candidate, with its Calibration learning online
      from every served request's true usage, as the gateway does after each attempt.
  (c) oracle: knows each request's true token counts and takes the cheapest feasible route.
No capacity limits or failures are simulated: every route is healthy and has room.

Planning overhead is measured per request with time.perf_counter_ns: validate_chat_request,
derive_needs and Planner.plan separately.

    python -m benchmarks.routing [--requests 10000] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.trace import AUTO, Trace, TraceRequest, build_trace
from service.catalog.loader import load_catalog
from service.catalog.model import FRONT_ENDS, Catalog, Model, Route
from service.chat.validate import validate_chat_request
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.needs import Needs, derive_needs
from service.routing.plan import Plan
from service.routing.planner import Planner, Policy

ORTHOGONAL_MARKUP = Decimal("1.0")
GAP_TARGET_PCT = 2.0
NO_POLICY = Policy()


def route_cost(route: Route, prompt: int, completion: int) -> Decimal | None:
    """What one call costs on this route for these true token counts; None when it has no price."""
    pricing = route.pricing
    if pricing.kind == "flat":
        return pricing.per_call
    if pricing.kind == "per_token":
        return pricing.token_cost(prompt, completion)
    if pricing.kind == "quoted" and route.estimate is not None:
        cost = route.estimate.token_cost(prompt, completion)
        return cost * ORTHOGONAL_MARKUP if cost is not None else None
    return None


def model_serves(model: Model, req: TraceRequest, needs: Needs, true_prompt: int) -> bool:
    """Features and true size: what the upstream itself would accept."""
    f = model.features
    if needs.tools and not (f.tools and f.tool_calling_recommended):
        return False
    if needs.response_format == "json_schema" and not f.structured_outputs:
        return False
    if needs.images and not f.vision:
        return False
    if needs.reasoning_effort is not None and needs.reasoning_effort not in f.reasoning_efforts:
        return False
    if needs.max_output is not None and needs.max_output > model.max_output_tokens:
        return False
    return true_prompt + (needs.max_output or 1) <= model.context_length


@dataclass(slots=True)
class Choice:
    route: Route
    cost: Decimal


def oracle_choice(catalog: Catalog, trace: Trace, req: TraceRequest, needs: Needs,
                  models: list[str]) -> Choice | None:
    best: Choice | None = None
    for model_id in models:
        model = catalog.models[model_id]
        prompt, completion = trace.true_usage(req, model, needs.base_prompt_tokens)
        if not model_serves(model, req, needs, prompt):
            continue
        for route in catalog.routes_for(model_id):
            if needs.stop_count > route.max_stop:
                continue
            cost = route_cost(route, prompt, completion)
            if cost is not None and (best is None or cost < best.cost):
                best = Choice(route, cost)
    return best


def baseline_choice(catalog: Catalog, trace: Trace, req: TraceRequest, needs: Needs,
                    models: list[str]) -> Choice | None:
    if req.model == AUTO:
        ranked = []
        for model_id in models:
            direct = catalog.find_route("baseten", model_id)
            model = catalog.models[model_id]
            prompt, _ = trace.true_usage(req, model, needs.base_prompt_tokens)
            if direct is None or direct.pricing.kind != "per_token":
                continue
            if not model_serves(model, req, needs, prompt):
                continue
            ranked.append((direct.pricing.input_per_mtok + direct.pricing.output_per_mtok, direct))
        if not ranked:
            return None
        direct = min(ranked, key=lambda pair: pair[0])[1]
    else:
        direct = catalog.find_route("baseten", req.model)
        if direct is None or direct.pricing.kind != "per_token":
            return None
    prompt, completion = trace.true_usage(req, catalog.models[direct.model], needs.base_prompt_tokens)
    return Choice(direct, route_cost(direct, prompt, completion))


@dataclass
class Tally:
    requests: int = 0
    baseline_skipped_unpriced: int = 0
    baseline_auto_unit_price: int = 0
    planner_unserved: int = 0
    oracle_unserved: int = 0
    # Over the requests the baseline prices: the savings comparison.
    baseline_total: Decimal = Decimal(0)
    planner_on_baseline_set: Decimal = Decimal(0)
    oracle_on_baseline_set: Decimal = Decimal(0)
    # The same, for requests naming a model (no `auto`): Baseten direct needs no model choice there.
    baseline_named: Decimal = Decimal(0)
    planner_named: Decimal = Decimal(0)
    # Over every request both the planner and the oracle serve: the gap to the oracle.
    planner_total: Decimal = Decimal(0)
    oracle_total: Decimal = Decimal(0)
    front_ends: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    excess: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    excess_count: Counter = field(default_factory=Counter)
    timings_ns: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))


def classify_excess(plan: Plan, mine: Route, best: Route, planned_cost_flat: bool) -> str:
    """Why the planner's route cost more than the oracle's."""
    if mine.model != best.model:
        if any(e.route == best.name and e.code == "context_length_exceeded" for e in plan.excluded):
            return "oracle's model excluded by the context margin"
        return "another model (auto): expected costs misjudged"
    if planned_cost_flat:
        return "flat fee taken; per-token was cheaper (answer or prompt shorter than expected)"
    return "per-token taken; flat fee was cheaper (answer or prompt longer than expected)"


def run(count: int, seed: int, *, tenant_memory: bool = True) -> dict[str, Any]:
    """`tenant_memory`: the planner learns each tenant's answer lengths, as the gateway does."""
    catalog = load_catalog()
    started = time.perf_counter()
    trace = build_trace(catalog, count, seed)
    trace_seconds = time.perf_counter() - started
    calibration = Calibration()
    planner = Planner(catalog, enabled_front_ends=frozenset(FRONT_ENDS), health=HealthBoard(),
                      capacity=CapacityBoard(), calibration=calibration)
    t = Tally()
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for req in trace.requests:
        body = req.body()
        t0 = clock()
        view = validate_chat_request(body)
        t1 = clock()
        needs = derive_needs(body, view)
        t2 = clock()
        tenant = req.tenant if tenant_memory else None
        policy = Policy(tenant=tenant) if tenant_memory else NO_POLICY
        plan = planner.plan(view.model, needs, view.provider, policy, fallbacks=view.models)
        t3 = clock()
        t.timings_ns["validate_chat_request"].append(t1 - t0)
        t.timings_ns["derive_needs"].append(t2 - t1)
        t.timings_ns["plan"].append(t3 - t2)
        t.timings_ns["plan (auto)" if req.model == AUTO else "plan (named model)"].append(t3 - t2)
        t.requests += 1
        models = planner.models_for(view.model, view.models, NO_POLICY)

        mine = None
        if plan.candidates:
            route = plan.candidates[0].route
            prompt, completion = trace.true_usage(req, catalog.models[route.model], needs.base_prompt_tokens)
            mine = Choice(route, route_cost(route, prompt, completion))
            # As the gateway does after every served attempt that reports usage.
            calibration.observe(route.model, needs.base_prompt_tokens, prompt, completion, tenant=tenant,
                                cap=needs.worst_output, effort=needs.reasoning_effort)
        best = oracle_choice(catalog, trace, req, needs, models)
        base = baseline_choice(catalog, trace, req, needs, models)

        t.planner_unserved += mine is None
        t.oracle_unserved += best is None
        if base is None:
            t.baseline_skipped_unpriced += 1
        elif mine is not None and best is not None:
            t.baseline_auto_unit_price += req.model == AUTO
            t.baseline_total += base.cost
            t.planner_on_baseline_set += mine.cost
            t.oracle_on_baseline_set += best.cost
            if req.model != AUTO:
                t.baseline_named += base.cost
                t.planner_named += mine.cost
            t.front_ends["(a) baseline"][base.route.front_end] += 1
        if mine is None or best is None:
            continue
        t.planner_total += mine.cost
        t.oracle_total += best.cost
        t.front_ends["(b) switchyard"][mine.route.front_end] += 1
        t.front_ends["(c) oracle"][best.route.front_end] += 1
        if mine.cost > best.cost:
            why = classify_excess(plan, mine.route, best.route, mine.route.pricing.kind == "flat")
            t.excess[why] += mine.cost - best.cost
            t.excess_count[why] += 1
    return report(t, count, seed, trace_seconds, time.perf_counter() - started)


def percentiles_us(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1_000, 1)

    return {"median": at(0.5), "p90": at(0.9), "p99": at(0.99), "count": len(ordered)}


def _pct(part: Decimal, whole: Decimal) -> float:
    return round(float(part / whole * 100), 2) if whole else 0.0


def report(t: Tally, count: int, seed: int, trace_seconds: float, run_seconds: float) -> dict[str, Any]:
    savings = t.baseline_total - t.planner_on_baseline_set
    savings_named = t.baseline_named - t.planner_named
    gap = t.planner_total - t.oracle_total
    q = Decimal("0.000001")
    return {
        "requests": t.requests,
        "seed": seed,
        "orthogonal_markup": str(ORTHOGONAL_MARKUP),
        "counts": {
            "baseline_skipped_unpriced_model": t.baseline_skipped_unpriced,
            "baseline_auto_by_unit_price": t.baseline_auto_unit_price,
            "planner_unserved": t.planner_unserved,
            "oracle_unserved": t.oracle_unserved,
        },
        "on_baseline_set_usd": {
            "a_baseline": str(t.baseline_total.quantize(q)),
            "b_switchyard": str(t.planner_on_baseline_set.quantize(q)),
            "c_oracle": str(t.oracle_on_baseline_set.quantize(q)),
        },
        "savings_b_vs_a": {"usd": str(savings.quantize(q)), "pct": _pct(savings, t.baseline_total)},
        "savings_b_vs_a_named_models_only": {
            "a_usd": str(t.baseline_named.quantize(q)),
            "b_usd": str(t.planner_named.quantize(q)),
            "usd": str(savings_named.quantize(q)),
            "pct": _pct(savings_named, t.baseline_named),
        },
        "all_served_usd": {
            "b_switchyard": str(t.planner_total.quantize(q)),
            "c_oracle": str(t.oracle_total.quantize(q)),
        },
        "gap_b_to_c": {
            "usd": str(gap.quantize(q)),
            "pct": _pct(gap, t.oracle_total),
            "target_pct": GAP_TARGET_PCT,
        },
        "gap_breakdown": {
            why: {"usd": str(usd.quantize(q)), "requests": t.excess_count[why], "share_pct": _pct(usd, gap)}
            for why, usd in sorted(t.excess.items(), key=lambda kv: -kv[1])
        },
        "front_end_mix": {policy: dict(sorted(c.items())) for policy, c in sorted(t.front_ends.items())},
        "overhead_us": {name: percentiles_us(samples) for name, samples in t.timings_ns.items()},
        "seconds": {"trace": round(trace_seconds, 2), "run": round(run_seconds, 2)},
    }


def render(result: dict[str, Any]) -> str:
    lines = [f"Routing benchmark: {result['requests']} requests, seed {result['seed']}", ""]
    a = result["on_baseline_set_usd"]
    counts = result["counts"]
    named = result["savings_b_vs_a_named_models_only"]
    skipped = counts["baseline_skipped_unpriced_model"]
    lines += [
        f"{'policy':<44}{'total USD':>14}",
        f"{'(a) Baseten direct':<44}{a['a_baseline']:>14}",
        f"{'(b) Switchyard planner':<44}{a['b_switchyard']:>14}",
        f"{'(c) oracle':<44}{a['c_oracle']:>14}",
        f"  over the {result['requests'] - skipped} requests the baseline prices "
        f"({skipped} skipped: no Baseten price; "
        f"{counts['baseline_auto_by_unit_price']} `auto` priced by lowest unit price)",
        "",
        f"savings (b) vs (a): {result['savings_b_vs_a']['usd']} USD = {result['savings_b_vs_a']['pct']}%"
        f" (named models only: {named['a_usd']} -> {named['b_usd']} USD,"
        f" {named['usd']} USD = {named['pct']}%)",
        f"every request served by both: (b) {result['all_served_usd']['b_switchyard']} USD, "
        f"(c) {result['all_served_usd']['c_oracle']} USD",
        f"gap (b) to (c): {result['gap_b_to_c']['usd']} USD = {result['gap_b_to_c']['pct']}% "
        f"(target {result['gap_b_to_c']['target_pct']}%)",
        f"unserved: planner {counts['planner_unserved']}, oracle {counts['oracle_unserved']}",
        "",
        "where (b) pays more than (c):",
    ]
    for why, row in result["gap_breakdown"].items():
        lines.append(f"  {row['usd']:>12} USD {row['share_pct']:>6}%  {row['requests']:>6} requests  {why}")
    lines += ["", "front-end mix:"]
    for policy, mix in result["front_end_mix"].items():
        lines.append(f"  {policy:<16} " + "  ".join(f"{fe} {n}" for fe, n in mix.items()))
    lines += ["", f"{'overhead (us)':<28}{'median':>10}{'p90':>10}{'p99':>10}{'n':>8}"]
    for name, row in result["overhead_us"].items():
        lines.append(f"{name:<28}{row['median']:>10}{row['p90']:>10}{row['p99']:>10}{row['count']:>8}")
    lines += ["", f"trace built in {result['seconds']['trace']} s, run in {result['seconds']['run']} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args.requests, args.seed)
    # The same trace once more with the planner blind to who is asking: what tenant memory is worth.
    blind = run(args.requests, args.seed, tenant_memory=False)
    result["without_tenant_memory"] = {"b_switchyard": blind["all_served_usd"]["b_switchyard"],
                                       "gap_b_to_c": blind["gap_b_to_c"]}
    print(render(result))
    print(f"without per-tenant answer lengths: (b) {blind['all_served_usd']['b_switchyard']} USD, "
          f"gap to (c) {blind['gap_b_to_c']['usd']} USD = {blind['gap_b_to_c']['pct']}%")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
