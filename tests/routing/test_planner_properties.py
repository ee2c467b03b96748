"""Properties of the planner over generated requests and generated routing states.

Whatever the request and whatever the catalog, circuits, capacity and calibration: every candidate
meets every constraint, candidates are ranked by expected cost, every route of every eligible model
is accounted for exactly once with a reason that is true, and the quote's worst case covers the
expected cost of every route it may try.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import GatewayError
from service.routing.no_route import no_route_error
from service.routing.plan import Plan

from .checks import Request, context_uncertain, eligible_models, plan_routes, prepare, unmet, worst_cost
from .world import World, bodies, worlds

# Derandomized so every run checks the same examples; SWITCHYARD_PROPERTY_EXAMPLES=2000 (with
# derandomize off: SWITCHYARD_PROPERTY_RANDOM=1) searches deeper.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SWITCHYARD_PROPERTY_EXAMPLES", "100")),
    derandomize=not os.environ.get("SWITCHYARD_PROPERTY_RANDOM"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[World, Request]:
    world = draw(worlds())
    return world, prepare(draw(bodies(world.catalog)))


def make_plan(world: World, req: Request) -> Plan | None:
    """The plan, or None when the tenant's policy allows none of the eligible models (a 403)."""
    try:
        return world.planner().plan(
            req.view.model, req.needs, req.prefs, world.policy, fallbacks=req.view.models, quotes=world.quotes
        )
    except GatewayError as err:
        refused = err
    assert (refused.status, refused.code) == (403, "model_not_allowed"), refused.message
    assert not eligible_models(world, req.view.model, req.view.models)
    return None


@PROPERTY_SETTINGS
@given(cases())
def test_every_candidate_meets_every_constraint(case):
    world, req = case
    plan = make_plan(world, req)
    if plan is None:
        return
    eligible = set(eligible_models(world, req.view.model, req.view.models))
    max_cost = req.prefs.max_cost_usd
    for c in plan.candidates:
        assert c.route.model in eligible
        failed = unmet(world, c.route, req.needs, req.prefs)
        assert not failed, f"{c.route.name} is a candidate but fails {sorted(failed)}"
        assert c.low <= c.expected <= c.high, (c.route.name, c.low, c.expected, c.high)
        assert c.context_uncertain == context_uncertain(world, c.route.model, req.needs), c.route.name
        # The reserved worst case covers the largest prompt the context check allows and the most
        # output the request allows.
        assert c.high >= worst_cost(world, c.route, req.needs)
        if max_cost is not None:
            assert c.high <= max_cost


@PROPERTY_SETTINGS
@given(cases())
def test_candidates_ranked_by_expected_cost(case):
    world, req = case
    plan = make_plan(world, req)
    if plan is None or req.prefs.sort not in (None, "price") or req.prefs.order:
        return
    requested = req.view.model
    named = requested != "auto" and requested not in world.catalog.pools
    # Routes whose model surely takes the prompt come before those it may not; then a named model
    # with a `models` list keeps the client's model order; within a model, and for `auto` and
    # pools, the cheapest expected cost comes first.
    client_order = {m: i for i, m in enumerate(eligible_models(world, requested, req.view.models))}
    keys = [(c.context_uncertain, client_order[c.route.model] if named else 0, c.expected) for c in plan.candidates]
    assert keys == sorted(keys), [(c.route.name, str(c.expected)) for c in plan.candidates]


@PROPERTY_SETTINGS
@given(cases())
def test_every_route_accounted_for_with_a_true_reason(case):
    world, req = case
    plan = make_plan(world, req)
    if plan is None:
        return
    models = eligible_models(world, req.view.model, req.view.models)
    expected_routes = Counter(r.name for m in models for r in world.catalog.routes_for(m))
    listed = Counter(plan_routes(plan))
    assert listed == expected_routes, f"listed too often: {listed - expected_routes}, never: {expected_routes - listed}"
    routes = {r.name: r for r in world.catalog.routes}
    for e in plan.excluded:
        failed = unmet(world, routes[e.route], req.needs, req.prefs)
        if e.code == "no_fallback":
            # Only a route that could have served, dropped because the client allows one route.
            assert not req.prefs.allow_fallbacks and not failed, (e.route, sorted(failed))
        else:
            assert e.code in failed, f"{e.route}: {e.code} ({e.reason}) is false; it fails {sorted(failed)}"


@PROPERTY_SETTINGS
@given(cases())
def test_quote_worst_case_covers_every_route_it_may_try(case):
    world, req = case
    plan = make_plan(world, req)
    if plan is None:
        return
    for k in range(1, len(plan.candidates) + 2):
        worst = plan.worst_case(k)
        for c in plan.candidates[:k]:
            assert worst >= c.expected and worst >= c.high, (k, c.route.name, worst, c.expected)


@PROPERTY_SETTINGS
@given(cases())
def test_an_empty_plan_explains_itself(case):
    world, req = case
    plan = make_plan(world, req)
    if plan is None or plan.candidates:
        return
    err = no_route_error(plan, world.catalog)
    codes = {e.code for e in plan.excluded}
    assert err.status in (400, 402, 404, 503), err.status
    if err.status == 402:
        assert "max_cost" in codes
    if err.status == 404:
        # Not servable: only routes without a configured front end or without any price.
        assert err.code == "model_not_servable" and codes <= {"front_end_disabled", "price_unknown"}
    if err.code == "context_length_exceeded":
        assert codes == {"context_length_exceeded"}
