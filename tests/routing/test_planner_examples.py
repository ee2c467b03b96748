"""The planner on the default catalog, case by case: the routing decisions users and operators rely on."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from service.catalog.loader import merge_overrides, parse_catalog
from service.catalog.model import Route
from service.routing.estimate import PRIOR_OUTPUT
from service.routing.no_route import no_route_error
from service.routing.plan import Plan

from .checks import prepare, unmet
from .world import JSON_SCHEMA_FORMAT, TOOL, World, default_raw, default_world, user_message

KIMI = "moonshotai/Kimi-K2.5"
R1 = "deepseek-ai/DeepSeek-R1-0528"
GPT_OSS = "openai/gpt-oss-120b"
V4_FLASH = "deepseek-ai/DeepSeek-V4-Flash-0731"
KIMI_K3 = "moonshotai/Kimi-K3"
# About four characters a token: these sizes give ~500 and ~40,000 prompt tokens.
SHORT_PROMPT = 2_000
LONG_PROMPT = 160_000


def body(model: str, chars: int = SHORT_PROMPT, images: int = 0, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [user_message(chars, images)], **fields}


def plan_of(request_body: dict[str, Any], world: World | None = None) -> Plan:
    world = world or default_world()
    req = prepare(request_body)
    return world.planner().plan(
        req.view.model, req.needs, req.prefs, world.policy, fallbacks=req.view.models, quotes=world.quotes
    )


def names(plan: Plan) -> list[str]:
    return [c.route.name for c in plan.candidates]


def excluded(plan: Plan) -> dict[str, str]:
    return {e.route: e.code for e in plan.excluded}


def expected_cost(route: Route, prompt_tokens: int) -> Decimal | None:
    """A fresh gateway's expected cost: the estimated prompt and the prior output length."""
    pricing = route.pricing if route.pricing.kind != "quoted" else route.estimate
    if route.pricing.kind == "flat":
        return route.pricing.per_call
    if pricing is None or pricing.kind == "unknown":
        return None
    return pricing.token_cost(prompt_tokens, PRIOR_OUTPUT)


def cheapest_capable(request_body: dict[str, Any]) -> tuple[Decimal, set[str]]:
    """Brute force over the whole catalog: the lowest expected cost of any route that can serve."""
    world = default_world()
    req = prepare(request_body)
    costs = {}
    for route in world.catalog.routes:
        if not unmet(world, route, req.needs, req.prefs):
            costs[route.name] = expected_cost(route, req.needs.base_prompt_tokens)
    best = min(costs.values())
    return best, {name for name, cost in costs.items() if cost == best}


@pytest.mark.parametrize(
    "fields",
    [{}, {"tools": [TOOL]}, {"response_format": JSON_SCHEMA_FORMAT, "reasoning_effort": "high"}],
    ids=["plain", "tools", "json_schema+effort"],
)
def test_auto_picks_the_cheapest_capable_model(fields):
    request_body = body("auto", **fields)
    plan = plan_of(request_body)
    best, cheapest = cheapest_capable(request_body)
    assert plan.candidates[0].expected == best
    assert plan.candidates[0].route.name in cheapest


def test_auto_short_prompt_goes_to_the_cheapest_per_token_model():
    assert names(plan_of(body("auto")))[0] == f"baseten:{V4_FLASH}"


def test_auto_long_prompt_goes_to_a_flat_fee():
    first = plan_of(body("auto", chars=400_000)).candidates[0]  # ~100,000 tokens
    assert first.route.front_end == "xpay" and first.expected == Decimal("0.01")


def test_pool_ranks_its_own_models_by_cost():
    world = default_world()
    pool = world.catalog.pools["budget"]
    plan = plan_of(body("budget"))
    assert {c.route.model for c in plan.candidates} <= set(pool)
    pool_routes = sorted(r.name for m in pool for r in world.catalog.routes_for(m))
    assert sorted(names(plan) + list(excluded(plan))) == pool_routes
    assert [c.expected for c in plan.candidates] == sorted(c.expected for c in plan.candidates)
    assert names(plan)[0] == f"baseten:{V4_FLASH}"


def test_models_fallback_list_keeps_the_clients_order():
    # Kimi K3 costs far more than the fallbacks, yet the client named it first.
    plan = plan_of(body(KIMI_K3, models=[GPT_OSS, V4_FLASH, GPT_OSS]))
    order = []
    for c in plan.candidates:
        if c.route.model not in order:
            order.append(c.route.model)
    assert order == [KIMI_K3, GPT_OSS, V4_FLASH]
    gpt = [c.expected for c in plan.candidates if c.route.model == GPT_OSS]
    assert gpt == sorted(gpt)


def test_allow_fallbacks_false_keeps_only_the_best_route():
    plan = plan_of(body(KIMI, provider={"allow_fallbacks": False}))
    assert names(plan) == [f"baseten:{KIMI}"]
    assert excluded(plan) == {f"xpay:{KIMI}": "no_fallback", f"orthogonal:{KIMI}": "no_fallback"}


def test_allow_fallbacks_false_with_order_keeps_the_ordered_front_ends():
    plan = plan_of(body(KIMI, provider={"allow_fallbacks": False, "order": ["xpay", "orthogonal"]}))
    assert names(plan) == [f"xpay:{KIMI}", f"orthogonal:{KIMI}"]
    assert excluded(plan) == {f"baseten:{KIMI}": "no_fallback"}


def test_max_cost_excluding_every_route_is_a_402():
    plan = plan_of(body(KIMI, provider={"max_cost_usd": "0.000001"}))
    assert not plan.candidates
    assert set(excluded(plan).values()) == {"max_cost"}
    err = no_route_error(plan, default_world().catalog)
    assert (err.status, err.type, err.code) == (402, "insufficient_quota", "max_cost_exceeded")
    assert err.headers.get("x-should-retry") == "false"


def test_max_cost_keeps_the_routes_under_the_ceiling():
    # ~40,000 tokens: Baseten's worst case is ~0.036 USD, xpay's flat fee 0.01.
    plan = plan_of(body(KIMI, chars=LONG_PROMPT, provider={"max_cost_usd": 0.02}))
    assert names(plan) == [f"xpay:{KIMI}"]
    assert all(c.high <= Decimal("0.02") for c in plan.candidates)


def test_context_too_long_for_every_model_names_the_largest_context():
    # ~300,000 tokens: over Kimi K2.5's 262,000 and gpt-oss-120b's 128,072.
    plan = plan_of(body(KIMI, chars=1_200_000, models=[GPT_OSS]))
    assert not plan.candidates
    assert set(excluded(plan).values()) == {"context_length_exceeded"}
    err = no_route_error(plan, default_world().catalog)
    assert (err.status, err.code, err.param) == (400, "context_length_exceeded", "messages")
    assert "262000" in err.message and "128072" not in err.message


def test_requested_output_counts_against_the_context():
    # ~100,000 estimated tokens: at least ~91,000 and at most ~110,000 with the margin.
    assert not any(c.context_uncertain for c in plan_of(body(GPT_OSS, chars=400_000, max_tokens=10_000)).candidates)
    maybe = plan_of(body(GPT_OSS, chars=400_000, max_tokens=30_000))  # 91,000..110,000 + 30,000 vs 128,072
    assert names(maybe) and all(c.context_uncertain for c in maybe.candidates)
    plan = plan_of(body(GPT_OSS, chars=400_000, max_tokens=40_000))  # 91,000 + 40,000 > 128,072 surely
    assert set(excluded(plan).values()) == {"context_length_exceeded"}


def test_json_schema_never_lands_on_a_model_without_structured_outputs():
    world = default_world()
    plan = plan_of(body("auto", response_format=JSON_SCHEMA_FORMAT))
    assert plan.candidates
    assert all(world.catalog.models[c.route.model].features.structured_outputs for c in plan.candidates)
    assert excluded(plan)["baseten:deepseek-ai/DeepSeek-V3.1"] == "unsupported_structured_outputs"
    named = plan_of(body("deepseek-ai/DeepSeek-V3.1", response_format=JSON_SCHEMA_FORMAT))
    err = no_route_error(named, world.catalog)
    assert (err.status, err.code, err.param) == (400, "unsupported_feature", "response_format")


def test_images_only_on_vision_models():
    world = default_world()
    plan = plan_of(body("auto", images=1))
    vision = {m.id for m in world.catalog.models.values() if m.features.vision}
    assert {c.route.model for c in plan.candidates} == vision
    err = no_route_error(plan_of(body(GPT_OSS, images=1)), world.catalog)
    assert (err.status, err.code, err.param) == (400, "unsupported_feature", "messages")


def test_deepseek_r1_is_never_chosen_for_tools():
    plan = plan_of(body(R1, tools=[TOOL]))
    assert not plan.candidates
    assert set(excluded(plan).values()) == {"unsupported_tools"}
    err = no_route_error(plan, default_world().catalog)
    assert (err.status, err.code, err.param) == (400, "unsupported_feature", "tools")
    # Even once R1 has a price (the seed catalog has none), tools keep it out, and only tools.
    priced = World(catalog=parse_catalog(merge_overrides(default_raw(), {"routes": [
        {"model": R1, "front_end": "baseten", "pricing": {"kind": "per_token", "input_per_mtok": "0.01",
                                                          "output_per_mtok": "0.01"}}]})))
    assert excluded(plan_of(body(R1, tools=[TOOL]), priced)) == {f"baseten:{R1}": "unsupported_tools"}
    assert names(plan_of(body(R1), priced)) == [f"baseten:{R1}"]
    assert all(c.route.model != R1 for c in plan_of(body("auto", tools=[TOOL]), priced).candidates)
    assert names(plan_of(body("auto"), priced))[0] == f"baseten:{R1}"  # the cheapest, without tools


def test_kimi_long_prompt_goes_to_xpay_first():
    plan = plan_of(body(KIMI, chars=LONG_PROMPT))
    assert names(plan)[0] == f"xpay:{KIMI}"
    # ~40,000 tokens at 0.60 USD per million: about 0.024 USD plus output, against a flat 0.01.
    baseten = next(c for c in plan.candidates if c.route.front_end == "baseten")
    assert baseten.expected > Decimal("0.024")


def test_kimi_short_prompt_goes_to_baseten_first():
    plan = plan_of(body(KIMI))
    assert names(plan)[0] == f"baseten:{KIMI}"
    assert plan.candidates[0].expected < Decimal("0.01")


def test_a_full_or_failing_route_spills_to_the_next_cheapest():
    world = default_world()
    world.exhaust("xpay", by_rate=False)
    plan = plan_of(body(KIMI, chars=LONG_PROMPT), world)
    assert names(plan) == [f"baseten:{KIMI}", f"orthogonal:{KIMI}"]
    assert excluded(plan) == {f"xpay:{KIMI}": "at_capacity"}
    world.open_circuit(f"baseten:{KIMI}")
    plan = plan_of(body(KIMI, chars=LONG_PROMPT), world)
    assert names(plan) == [f"orthogonal:{KIMI}"]


def test_a_cheaper_quote_wins():
    world = default_world()
    world.quotes = {f"orthogonal:{KIMI}": Decimal("0.004")}
    plan = plan_of(body(KIMI, chars=LONG_PROMPT), world)
    first = plan.candidates[0]
    assert (first.route.name, first.cost_basis) == (f"orthogonal:{KIMI}", "quoted")
    assert first.low == first.expected == Decimal("0.004")
    assert first.high >= first.expected  # the reservation still bounds a longer answer


# ---- planner bugs these tests found (B1-B3), fixed; they keep them fixed ----


def test_no_fallback_with_an_unmatched_order_lists_each_route_once():
    plan = plan_of(body(KIMI, provider={"allow_fallbacks": False, "only": ["baseten"], "order": ["xpay"]}))
    assert names(plan) == [f"baseten:{KIMI}"]
    assert f"baseten:{KIMI}" not in excluded(plan)


def test_max_cost_excluding_every_capable_route_under_auto_is_a_402():
    plan = plan_of(body("auto", tools=[TOOL], provider={"max_cost_usd": "0.000001"}))
    assert not plan.candidates
    assert no_route_error(plan, default_world().catalog).status == 402


def test_a_long_image_prompt_is_told_about_context_not_vision():
    plan = plan_of(body("auto", chars=1_300_000, images=1))  # ~325,000 tokens: over Kimi K2.5/K2.6's 262,000
    err = no_route_error(plan, default_world().catalog)
    assert (err.status, err.code) == (400, "context_length_exceeded")
