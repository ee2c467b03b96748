"""The routing rules restated independently of the planner, so its plans can be checked against them.

`unmet(...)` lists every constraint a route fails for a request, by the exclusion code the planner
uses for it; a candidate must fail none, and an excluded route must really fail the one it names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from service.catalog.model import Route
from service.chat.validate import ChatRequestView, validate_chat_request
from service.chat.validate_params import MAX_OUTPUT_TOKENS
from service.chat.validate_provider import DEFAULT_PROVIDER_PREFS, ProviderPrefs
from service.errors import GatewayError
from service.routing.estimate import CONTEXT_MARGIN
from service.routing.needs import GATEWAY_PARAMS, MARKETPLACE_PARAMS, Needs, derive_needs
from service.routing.plan import Plan
from service.routing.planner import capacity_group

from .world import World


@dataclass
class Request:
    body: dict[str, Any]
    view: ChatRequestView
    needs: Needs

    @property
    def prefs(self) -> ProviderPrefs:
        return self.view.provider


def prepare(body: dict[str, Any]) -> Request:
    """Validate and derive needs. A max output beyond what the validator admits is refused by it
    (checked here), then handed to the planner anyway: the planner must stay sound for any Needs."""
    limit_key = next((k for k in ("max_completion_tokens", "max_tokens") if k in body), None)
    asked = body.get(limit_key) if limit_key else None
    if asked is not None and asked > MAX_OUTPUT_TOKENS:
        with pytest.raises(GatewayError) as refused:
            validate_chat_request(body)
        assert (refused.value.status, refused.value.param) == (400, limit_key)
        body = {**body, limit_key: MAX_OUTPUT_TOKENS}
    view = validate_chat_request(body)
    needs = derive_needs(body, view)
    if asked is not None and asked > MAX_OUTPUT_TOKENS:
        needs.max_output = needs.worst_output = asked
    return Request(body, view, needs)


def context_prompt(world: World, model_id: str, needs: Needs) -> int:
    """The most tokens the prompt may count: calibrated, never below the raw estimate, with margin."""
    ratio = world.calibration.prompt_ratio(model_id)
    return math.ceil(needs.base_prompt_tokens * max(ratio, 1.0) * CONTEXT_MARGIN)


def context_low(world: World, model_id: str, needs: Needs) -> int:
    """The fewest tokens the prompt may count: calibrated, less the margin."""
    ratio = world.calibration.prompt_ratio(model_id)
    return math.floor(needs.base_prompt_tokens * ratio / CONTEXT_MARGIN)


def context_uncertain(world: World, model_id: str, needs: Needs) -> bool:
    """May the prompt not fit? (Then only the upstream can tell, and the route is tried last.)"""
    model = world.catalog.models[model_id]
    return context_prompt(world, model_id, needs) + (needs.max_output or 1) > model.context_length


def worst_cost(world: World, route: Route, needs: Needs) -> Decimal | None:
    """The most this request can cost on this route; None when the route has no price at all."""
    model = world.catalog.models[route.model]
    prompt = context_prompt(world, route.model, needs)
    output = min(needs.worst_output, model.max_output_tokens)
    pricing = route.pricing
    if pricing.kind == "flat":
        return pricing.per_call
    if pricing.kind == "per_token":
        return pricing.token_cost(prompt, output)
    if pricing.kind == "quoted":
        quote = (world.quotes or {}).get(route.name)
        estimated = route.estimate.token_cost(prompt, output) if route.estimate is not None else None
        if quote is not None:
            # A quote prices the call as sent; a longer answer than the quote assumed may cost more.
            return quote if estimated is None else max(quote, estimated)
        return estimated
    return None


def unmet(world: World, route: Route, needs: Needs, prefs: ProviderPrefs | None) -> set[str]:
    """Every constraint this route fails for this request, as planner exclusion codes."""
    prefs = prefs or DEFAULT_PROVIDER_PREFS
    model = world.catalog.models[route.model]
    f = model.features
    fe = route.front_end
    out: set[str] = set()
    if context_low(world, model.id, needs) + (needs.max_output or 1) > model.context_length:
        out.add("context_length_exceeded")
    if needs.max_output is not None and needs.max_output > model.max_output_tokens:
        out.add("max_output")
    if needs.tools and not (f.tools and f.tool_calling_recommended):
        out.add("unsupported_tools")
    if needs.response_format == "json_object" and not f.json_mode:
        out.add("unsupported_json_mode")
    if needs.response_format == "json_schema" and not f.structured_outputs:
        out.add("unsupported_structured_outputs")
    if needs.images and not f.vision:
        out.add("unsupported_vision")
    if needs.audio:
        out.add("unsupported_audio")  # no catalog model takes audio input
    if needs.reasoning_effort is not None and needs.reasoning_effort not in f.reasoning_efforts:
        out.add("unsupported_reasoning_effort")
    if fe not in world.enabled:
        out.add("front_end_disabled")
    if fe in world.policy.denied_front_ends:
        out.add("policy")
    if prefs.only and fe not in prefs.only:
        out.add("provider_only")
    if fe in prefs.ignore:
        out.add("provider_ignore")
    if needs.stop_count > route.max_stop:
        out.add("param_limit")
    dropped = needs.sent_params - MARKETPLACE_PARAMS - GATEWAY_PARAMS
    if prefs.require_parameters and fe != "baseten" and dropped:
        out.add("require_parameters")
    if not world.health.available(route.name)[0]:
        out.add("circuit_open")
    if not world.capacity.has_room(capacity_group(route)):
        out.add("at_capacity")
    worst = worst_cost(world, route, needs)
    if worst is None:
        out.add("price_unknown")
    elif prefs.max_cost_usd is not None and worst > prefs.max_cost_usd:
        out.add("max_cost")
    return out


def eligible_models(world: World, requested: str, fallbacks: tuple[str, ...] | None) -> list[str]:
    """The models a request may be served by (the caller handles unknown models and the 403)."""
    catalog = world.catalog
    if requested == "auto":
        models = list(catalog.models)
    elif requested in catalog.pools:
        models = list(catalog.pools[requested])
    else:
        models = [requested]
    for extra in fallbacks or ():
        if extra not in models:
            models.append(extra)
    allowed = world.policy.allowed_models
    return [m for m in models if allowed is None or m in allowed]


def plan_routes(plan: Plan) -> list[str]:
    return [c.route.name for c in plan.candidates] + [e.route for e in plan.excluded]
