"""The planner: every candidate route for a request, filtered with a reason, ranked by expected
cost (or by the client's `sort`). What a plan holds is in service.routing.plan.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from decimal import Decimal

from service.catalog.model import Catalog, Model, Route
from service.chat.validate_provider import ProviderPrefs
from service.errors import GatewayError
from service.routing.allocation import FlatFeeAllocator
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration, context_estimate, context_low_estimate, cost_estimate
from service.routing.health import HealthBoard
from service.routing.needs import GATEWAY_PARAMS, MARKETPLACE_PARAMS, Needs
from service.routing.plan import Candidate, Exclusion, Plan, RankKey, float_cost
from service.routing.quotes import QuoteAccuracy

VIRTUAL_AUTO = "auto"


@dataclass(slots=True)
class Policy:
    """The tenant's stored policy, as routing needs it."""

    allowed_models: frozenset[str] | None = None
    denied_front_ends: frozenset[str] = frozenset()
    # Whose answer lengths to expect, when known: the key Calibration groups a tenant's answers by
    # (the tenant id in the gateway).
    tenant: Hashable | None = None


class Planner:
    def __init__(
        self,
        catalog: Catalog,
        *,
        enabled_front_ends: frozenset[str],
        health: HealthBoard,
        capacity: CapacityBoard,
        calibration: Calibration,
        allocators: dict[str, FlatFeeAllocator] | None = None,
        quote_accuracy: QuoteAccuracy | None = None,
    ) -> None:
        self.catalog = catalog
        self.enabled = enabled_front_ends
        self.health = health
        self.capacity = capacity
        self.calibration = calibration
        # Per capacity group: who gets its flat-fee calls when they are scarce (none: first come).
        self.allocators = allocators or {}
        self.quote_accuracy = quote_accuracy

    def models_for(self, requested: str, fallbacks: tuple[str, ...] | None, policy: Policy) -> list[str]:
        """The models a request may be served by, in preference order."""
        catalog = self.catalog
        requested = catalog.resolve(requested)
        if requested == VIRTUAL_AUTO:
            models = list(catalog.models)
        elif requested in catalog.pools:
            models = list(catalog.pools[requested])
        elif requested in catalog.models:
            models = [requested]
        else:
            raise GatewayError(
                404,
                f"The model `{requested}` does not exist or you do not have access to it.",
                type="not_found_error",
                code="model_not_found",
                param="model",
            )
        for extra in fallbacks or ():
            if extra not in catalog.models:
                raise GatewayError(404, f"The model `{extra}` in `models` does not exist.",
                                   type="not_found_error", code="model_not_found", param="models")
            if extra not in models:
                models.append(extra)
        if policy.allowed_models is not None:
            allowed = [m for m in models if m in policy.allowed_models]
            if not allowed:
                raise GatewayError(
                    403,
                    f"Your organization may not use `{requested}`.",
                    type="permission_error",
                    code="model_not_allowed",
                    param="model",
                )
            models = allowed
        return models

    def plan(self, requested: str, needs: Needs, prefs: ProviderPrefs | None, policy: Policy, *,
             fallbacks: tuple[str, ...] | None = None, quotes: dict[str, Decimal] | None = None,
             count_demand: bool | None = None) -> Plan:
        """`count_demand`: whether this plan counts as the request's demand for flat-fee capacity.
        By default a request counts once: on its first plan (no quotes yet), unless its only
        other route awaits a quote, and then on its plan with that quote. A quote endpoint that
        only shows a plan passes False."""
        plan = Plan(requested_model=requested)
        models = self.models_for(requested, fallbacks, policy)
        requested = self.catalog.resolve(requested)
        model_order = {m: i for i, m in enumerate(models)}
        ordered_models = requested != VIRTUAL_AUTO and requested not in self.catalog.pools
        only = set(prefs.only) if prefs and prefs.only else None
        ignore = set(prefs.ignore) if prefs and prefs.ignore else set()
        order = list(prefs.order) if prefs and prefs.order else []
        max_cost = prefs.max_cost_usd if prefs else None
        require_params = bool(prefs and prefs.require_parameters)
        sort = (prefs.sort if prefs else None) or "price"
        allocate = bool(self.allocators) and sort == "price"
        full: list[Candidate] = []  # flat-fee routes with no room now: still demand for their pool
        unpriced: list[tuple[int, ...]] = []  # tiers of quoted routes a dry run could still price
        for model_id in models:
            model = self.catalog.models[model_id]
            ratio = self.calibration.prompt_ratio(model_id)
            prompt_ctx = context_estimate(needs.base_prompt_tokens, ratio)
            prompt_low = context_low_estimate(needs.base_prompt_tokens, ratio)
            tenant_ratio = self.calibration.prompt_ratio(model_id, policy.tenant)
            prompt_cost = cost_estimate(needs.base_prompt_tokens, tenant_ratio)
            model_reason = _model_unfit(model, needs, prompt_low)
            uncertain = prompt_ctx + (needs.max_output or 1) > model.context_length
            expected_out = self.calibration.expected_output(model_id, needs.worst_output, policy.tenant,
                                                            needs.reasoning_effort)
            for route in self.catalog.routes_for(model_id):
                name = route.name
                if model_reason is not None:
                    too_long = model_reason[0] == "context_length_exceeded"
                    sizes = (prompt_low, needs.max_output or 0) if too_long else (None, None)
                    plan.excluded.append(Exclusion(name, model_reason[1], model_reason[0], *sizes))
                    continue
                reason = self._route_unfit(route, needs, only, ignore, policy, require_params)
                if reason is not None:
                    plan.excluded.append(Exclusion(name, reason[1], reason[0]))
                    if allocate and reason[0] == "at_capacity" and route.pricing.kind == "flat":
                        ghost = self._price(route, model, needs, prompt_cost, prompt_ctx, quotes, expected_out)
                        if ghost is not None:
                            ghost.context_uncertain = uncertain
                            ghost.rank_key = self._rank_key(ghost, sort, order, model_order, ordered_models)
                            full.append(ghost)
                    continue
                candidate = self._price(route, model, needs, prompt_cost, prompt_ctx, quotes, expected_out)
                if candidate is None:
                    plan.excluded.append(Exclusion(name, "no known price for this route", "price_unknown"))
                    if allocate and route.pricing.kind == "quoted":
                        unpriced.append(self._tier(route, uncertain, order, model_order, ordered_models))
                    continue
                # Floats first: the exact comparison only near the ceiling.
                if max_cost is not None and candidate.high_f() >= float(max_cost) * 0.999 and candidate.high > max_cost:
                    plan.excluded.append(Exclusion(
                        name, f"worst-case cost {candidate.high:.6f} exceeds max_cost_usd {max_cost}", "max_cost"))
                    continue
                candidate.context_uncertain = uncertain
                candidate.rank_key = self._rank_key(candidate, sort, order, model_order, ordered_models)
                plan.candidates.append(candidate)
        if allocate:
            self._allocate(plan.candidates, full, unpriced, order, count_demand, quotes is not None)
        plan.candidates.sort(key=lambda c: c.rank_key)
        if prefs is not None and not prefs.allow_fallbacks and plan.candidates:
            keep = [c for c in plan.candidates if c.route.front_end in order] or plan.candidates[:1]
            kept = {id(c) for c in keep}
            for dropped in plan.candidates:
                if id(dropped) not in kept:
                    plan.excluded.append(Exclusion(dropped.route.name, "fallbacks disallowed", "no_fallback"))
            plan.candidates = keep
        return plan

    def _route_unfit(self, route: Route, needs: Needs, only: set[str] | None, ignore: set[str], policy: Policy,
                     require_params: bool) -> tuple[str, str] | None:
        fe = route.front_end
        if fe not in self.enabled:
            return "front_end_disabled", f"front end {fe} is not configured"
        if fe in policy.denied_front_ends:
            return "policy", f"front end {fe} denied by tenant policy"
        if only is not None and fe not in only:
            return "provider_only", "not in provider.only"
        if fe in ignore:
            return "provider_ignore", "in provider.ignore"
        if needs.stop_count > route.max_stop:
            return "param_limit", f"{needs.stop_count} stop sequences; {fe} takes at most {route.max_stop}"
        if require_params and fe != "baseten":
            dropped = needs.sent_params - MARKETPLACE_PARAMS - GATEWAY_PARAMS
            if dropped:
                return "require_parameters", f"{fe} does not take {', '.join(sorted(dropped))}"
        available, why = self.health.available(route.name)
        if not available:
            return "circuit_open", why or "circuit open"
        if not self.capacity.has_room(capacity_group(route)):
            return "at_capacity", f"{fe} is at its request-rate or concurrency limit"
        return None

    def _price(self, route: Route, model: Model, needs: Needs, prompt: int, prompt_high: int,
               quotes: dict[str, Decimal] | None, expected_out: int) -> Candidate | None:
        worst_out = min(needs.worst_output, model.max_output_tokens)
        pricing = route.pricing
        if pricing.kind == "per_token":
            basis, p = "per_token", pricing
        elif pricing.kind == "flat":
            fee = pricing.per_call or Decimal(0)
            return Candidate(route, model, prompt, expected_out, "flat", float(fee), exact=(fee, fee, fee),
                             worst_out=worst_out)
        elif pricing.kind == "quoted":
            quote = quotes.get(route.name) if quotes else None
            if quote is not None:
                # A quote prices the call as sent; the worst case still bounds longer outputs.
                by_tokens = route.estimate.token_cost(prompt_high, worst_out) if route.estimate else None
                high = quote if by_tokens is None else max(quote, by_tokens)
                return Candidate(route, model, prompt, expected_out, "quoted",
                                 self._quote_rank(route, quote, prompt, expected_out), exact=(quote, quote, high),
                                 pricing=route.estimate, prompt_high=prompt_high, worst_out=worst_out,
                                 prompt_bound=needs.prompt_bound_tokens, quote=quote)
            if route.estimate is None:
                return None
            basis, p = "estimated_quote", route.estimate
        else:
            return None
        return Candidate(route, model, prompt, expected_out, basis, float_cost(p, prompt, expected_out),
                         pricing=p, prompt_high=prompt_high, worst_out=worst_out,
                         prompt_bound=needs.prompt_bound_tokens)

    def _quote_rank(self, route: Route, quote: Decimal, prompt: int, expected_out: int) -> float:
        """What ranking believes a quoted call costs: the quote, corrected by how quotes on this
        route have compared with charges, and leaning on the per-token estimate as far as they
        have proved inaccurate. The estimate is the per-token terms the route's own charges have
        followed once they are known (the marketplace's real prices), else the catalog's."""
        accuracy = self.quote_accuracy
        if accuracy is None:
            return float(quote)
        view = accuracy.view(route.name, quote)
        estimate = accuracy.learned_cost(route.name, prompt, expected_out)
        if estimate is None and route.estimate is not None:
            estimate = float_cost(route.estimate, prompt, expected_out)
        if estimate is None:
            return view.corrected
        return view.trust * view.corrected + (1.0 - view.trust) * estimate

    def _allocate(self, candidates: list[Candidate], full: list[Candidate], unpriced: list[tuple[int, ...]],
                  order: list[str], count_demand: bool | None, quoted: bool) -> None:
        """Hold back a flat-fee route whose expected saving over the request's best other route
        is below its pool's threshold (a route the client put in `order` is its choice, kept).
        A pool with no room now still counts the request as demand (`full`)."""
        for group, allocator in self.allocators.items():
            def in_pool(c: Candidate) -> bool:
                return c.cost_basis == "flat" and capacity_group(c.route) == group  # noqa: B023

            flat = [c for c in candidates if in_pool(c) and c.route.front_end not in order]
            wanting = flat or [c for c in full if capacity_group(c.route) == group and c.route.front_end not in order]
            if not wanting:
                continue
            best_flat = min(wanting, key=lambda c: c.rank_key)
            # Against the routes the request would otherwise take first: same client preference
            # (front-end order, model order), any pricing but this pool's flat fee.
            tier = best_flat.rank_key[:3]
            others = [c for c in candidates if c.rank_key[:3] == tier and not in_pool(c)]
            awaiting_quote = not quoted and tier in unpriced
            # A route priced only by a quote given now was awaiting it in the request's first plan.
            was_awaiting = quoted and any(c.cost_basis == "quoted" and c.route.estimate is None for c in others)
            if count_demand is None:
                count = was_awaiting if quoted else not awaiting_quote
            else:
                count = count_demand
            if not others:
                if awaiting_quote:
                    continue  # nothing to weigh yet: the plan with the quote decides
                saving = math.inf  # the flat fee is this request's only route
            else:
                saving = min(c.expected_f for c in others) - best_flat.expected_f
            if saving <= 0 or allocator.consider(saving, prompt_tokens=best_flat.prompt_tokens,
                                                 output_tokens=best_flat.expected_output,
                                                 route=best_flat.route.name, count=count):
                continue
            for c in flat:
                c.held_back = True
                c.rank_key = (*c.rank_key[:3], 1, *c.rank_key[4:])

    def _tier(self, route: Route, uncertain: bool, order: list[str], model_order: dict[str, int],
              ordered_models: bool) -> tuple[int, ...]:
        fe_rank = order.index(route.front_end) if route.front_end in order else len(order)
        # A named model with a `models` fallback list keeps the client's model order.
        model_rank = model_order[route.model] if ordered_models else 0
        return (int(uncertain), fe_rank, model_rank)

    def _rank_key(self, c: Candidate, sort: str, order: list[str], model_order: dict[str, int],
                  ordered_models: bool) -> RankKey:
        """(context uncertain, client's front-end order, client's model order, held back, then by `sort`)."""
        name = c.route.name
        head = (*self._tier(c.route, c.context_uncertain, order, model_order, ordered_models), 0)
        if sort == "latency":
            # Measured time to first token, lowest first; routes not yet measured after them.
            ttft = self.health.ttft(name)
            return (*head, ttft is None, ttft or 0.0, c.expected_f)
        if sort == "throughput":
            # Measured output tokens a second, highest first; routes not yet measured after them.
            pace = self.health.tokens_per_second(name)
            return (*head, pace is None, -(pace or 0.0), c.expected_f)
        failure = self.health.failure_rate(name)
        latency = self.health.latency(name) or 0.0
        return (*head, c.expected_f, failure, latency)


def capacity_group(route: Route) -> str:
    # xpay's limits bind its API key, which every xpay route shares.
    return "xpay" if route.front_end == "xpay" else route.name


def _model_unfit(model: Model, needs: Needs, prompt_low: int) -> tuple[str, str] | None:
    f = model.features
    if needs.max_output is not None and needs.max_output > model.max_output_tokens:
        return "max_output", f"max output {needs.max_output} exceeds {model.id}'s maximum {model.max_output_tokens}"
    if needs.tools and not f.tools:
        return "unsupported_tools", f"{model.id} does not support tools"
    if needs.tools and not f.tool_calling_recommended:
        return "unsupported_tools", f"{model.id} is not recommended for tool calling"
    if needs.response_format == "json_object" and not f.json_mode:
        return "unsupported_json_mode", f"{model.id} does not support JSON mode"
    if needs.response_format == "json_schema" and not f.structured_outputs:
        return "unsupported_structured_outputs", f"{model.id} does not support structured outputs"
    if needs.images and not f.vision:
        return "unsupported_vision", f"{model.id} does not accept images"
    if needs.audio:
        return "unsupported_audio", f"{model.id} does not accept audio"
    if needs.reasoning_effort is not None and needs.reasoning_effort not in f.reasoning_efforts:
        return "unsupported_reasoning_effort", f"{model.id} does not take reasoning_effort={needs.reasoning_effort}"
    # Last: a model that lacks a needed feature is reported for that, not for its length.
    # Only a prompt that surely exceeds the context: one that may fit is the upstream's to judge.
    requested_out = needs.max_output or 1
    if prompt_low + requested_out > model.context_length:
        return (
            "context_length_exceeded",
            (f"at least about {prompt_low} prompt tokens + {requested_out} output exceed {model.id}'s context of "
             f"{model.context_length}"),
        )
    return None
