"""The plan: every candidate route for a request, filtered with a reason, ranked by expected cost.

Ranking uses floats (it only orders routes); every figure reported or reserved is exact Decimal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from service.catalog.model import Catalog, Model, Pricing, Route
from service.errors import GatewayError
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration, context_estimate, cost_estimate
from service.routing.health import HealthBoard
from service.routing.needs import GATEWAY_PARAMS, MARKETPLACE_PARAMS, Needs

VIRTUAL_AUTO = "auto"


@dataclass(slots=True)
class Policy:
    """The tenant's stored policy, as routing needs it."""

    allowed_models: frozenset[str] | None = None
    denied_front_ends: frozenset[str] = frozenset()
    tenant: Any = None  # whose answer lengths to expect, when known


class Candidate:
    """A route that can serve the request. Ranking reads `expected_f`, a float; the exact Decimal
    costs (`low`, `expected`, `high`) are computed on first use, since only the routes actually
    tried, reserved against or shown in a quote ever need them."""

    __slots__ = (
        "_bound",
        "_exact",
        "_pricing",
        "_prompt_bound",
        "_prompt_high",
        "cost_basis",
        "expected_f",
        "expected_output",
        "model",
        "prompt_tokens",
        "quote",
        "rank_key",
        "route",
        "worst_output",
    )

    def __init__(self, route: Route, model: Model, prompt_tokens: int, expected_output: int, cost_basis: str,
                 expected_f: float, *, pricing: Pricing | None = None, prompt_high: int = 0, worst_out: int = 0,
                 prompt_bound: int = 0, exact: tuple[Decimal, Decimal, Decimal] | None = None,
                 quote: Decimal | None = None) -> None:
        self.route = route
        self.model = model
        self.prompt_tokens = prompt_tokens  # the cost estimate's prompt tokens (calibrated)
        self.expected_output = expected_output
        self.cost_basis = cost_basis  # per_token | flat | quoted | estimated_quote
        self.expected_f = expected_f
        self.rank_key: tuple = ()
        # The output bound the gateway sends upstream when the client set none: what `high` and
        # `bound` assume, so that nothing can generate past them.
        self.worst_output = worst_out
        self.quote = quote  # Orthogonal's dry-run price for this call, when one was asked
        self._pricing = pricing
        self._prompt_high = prompt_high
        self._prompt_bound = max(prompt_bound, prompt_high)
        self._exact = exact
        self._bound: Decimal | None = None

    def _costs(self) -> tuple[Decimal, Decimal, Decimal]:
        if self._exact is None:
            p = self._pricing
            self._exact = (
                p.token_cost(self.prompt_tokens, 1),
                p.token_cost(self.prompt_tokens, self.expected_output),
                p.token_cost(self._prompt_high, self.worst_output),
            )
        return self._exact

    @property
    def low(self) -> Decimal:
        return self._costs()[0]

    @property
    def expected(self) -> Decimal:
        return self._costs()[1]

    @property
    def high(self) -> Decimal:
        return self._costs()[2]

    @property
    def bound(self) -> Decimal:
        """The most this call can cost the operator, for hard budgets: the prompt at one token
        per byte of what is sent (no tokenizer yields a token shorter than a byte), the output at
        the bound sent upstream; a quoted route at twice its quote or token estimate, since its
        price is the marketplace's to set (a charge above it is counted and reported as a shortfall)."""
        if self._bound is None:
            if self.cost_basis == "flat":
                self._bound = self.high
            elif self.cost_basis in ("quoted", "estimated_quote"):
                by_tokens = self._pricing.token_cost(self._prompt_bound, self.worst_output) if self._pricing else None
                self._bound = 2 * max(self.high, by_tokens or Decimal(0))
            else:
                assert self._pricing is not None
                self._bound = self._pricing.token_cost(self._prompt_bound, self.worst_output) or self.high
        return self._bound

    def high_f(self) -> float:
        if self._exact is not None:
            return float(self._exact[2])
        return _float_cost(self._pricing, self._prompt_high, self.worst_output)

    def as_json(self, billed: Callable[[Decimal], Decimal] = lambda amount: amount) -> dict[str, Any]:
        """`billed` turns a provider cost into what the caller would be billed for it."""
        return {
            "route": self.route.name,
            "model": self.route.model,
            "front_end": self.route.front_end,
            "cost_usd": {"low": str(billed(self.low)), "expected": str(billed(self.expected)),
                         "high": str(billed(self.high)), "reserved": str(billed(self.bound))},
            "cost_basis": self.cost_basis,
            "estimated_prompt_tokens": self.prompt_tokens,
            "expected_output_tokens": self.expected_output,
        }


def _float_cost(p: Pricing, prompt: int, completion: int) -> float:
    """The same arithmetic as Pricing.token_cost in floats, for ranking only."""
    per_in, per_out, fee = p.float_terms
    return prompt * per_in + completion * per_out + fee


@dataclass(slots=True)
class Exclusion:
    route: str
    reason: str
    code: str

    def as_json(self) -> dict[str, str]:
        return {"route": self.route, "reason": self.reason, "code": self.code}


@dataclass(slots=True)
class Plan:
    requested_model: str
    candidates: list[Candidate] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)

    def worst_case(self, attempts: int) -> Decimal:
        """What the first `attempts` routes could cost together at most: every attempt can be
        charged (a marketplace may bill a failed call, a cut stream bills its tokens)."""
        return sum((c.bound for c in self.candidates[:attempts]), Decimal(0))

    def as_json(self, billed: Callable[[Decimal], Decimal] = lambda amount: amount) -> dict[str, Any]:
        return {
            "model": self.requested_model,
            "routes": [c.as_json(billed) for c in self.candidates],
            "excluded": [e.as_json() for e in self.excluded],
        }


class Planner:
    def __init__(
        self,
        catalog: Catalog,
        *,
        enabled_front_ends: frozenset[str],
        health: HealthBoard,
        capacity: CapacityBoard,
        calibration: Calibration,
    ) -> None:
        self.catalog = catalog
        self.enabled = enabled_front_ends
        self.health = health
        self.capacity = capacity
        self.calibration = calibration

    def models_for(self, requested: str, fallbacks: tuple[str, ...] | None, policy: Policy) -> list[str]:
        """The models a request may be served by, in preference order."""
        catalog = self.catalog
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

    def plan(self, requested: str, needs: Needs, prefs: Any, policy: Policy, *,
             fallbacks: tuple[str, ...] | None = None, quotes: dict[str, Decimal] | None = None) -> Plan:
        plan = Plan(requested_model=requested)
        models = self.models_for(requested, fallbacks, policy)
        model_order = {m: i for i, m in enumerate(models)}
        ordered_models = requested not in (VIRTUAL_AUTO,) and requested not in self.catalog.pools
        only = set(prefs.only) if prefs and prefs.only else None
        ignore = set(prefs.ignore) if prefs and prefs.ignore else set()
        order = list(prefs.order) if prefs and prefs.order else []
        max_cost = prefs.max_cost_usd if prefs else None
        require_params = bool(prefs and prefs.require_parameters)
        sort = (prefs.sort if prefs else None) or "price"
        for model_id in models:
            model = self.catalog.models[model_id]
            ratio = self.calibration.prompt_ratio(model_id)
            prompt_ctx = context_estimate(needs.base_prompt_tokens, ratio)
            prompt_cost = cost_estimate(needs.base_prompt_tokens, ratio)
            model_reason = _model_unfit(model, needs, prompt_ctx)
            expected_out = self.calibration.expected_output(model_id, needs.worst_output, policy.tenant)
            for route in self.catalog.routes_for(model_id):
                name = route.name
                if model_reason is not None:
                    plan.excluded.append(Exclusion(name, model_reason[1], model_reason[0]))
                    continue
                reason = self._route_unfit(route, needs, only, ignore, policy, require_params)
                if reason is not None:
                    plan.excluded.append(Exclusion(name, reason[1], reason[0]))
                    continue
                candidate = self._price(route, model, needs, prompt_cost, prompt_ctx, quotes, expected_out)
                if candidate is None:
                    plan.excluded.append(Exclusion(name, "no known price for this route", "price_unknown"))
                    continue
                # Floats first: the exact comparison only near the ceiling.
                if max_cost is not None and candidate.high_f() >= float(max_cost) * 0.999 and candidate.high > max_cost:
                    plan.excluded.append(Exclusion(
                        name, f"worst-case cost {candidate.high:.6f} exceeds max_cost_usd {max_cost}", "max_cost"))
                    continue
                candidate.rank_key = self._rank_key(candidate, sort, order, model_order, ordered_models)
                plan.candidates.append(candidate)
        plan.candidates.sort(key=lambda c: c.rank_key)
        if prefs is not None and not prefs.allow_fallbacks and plan.candidates:
            keep = [c for c in plan.candidates if c.route.front_end in order] or plan.candidates[:1]
            kept = {id(c) for c in keep}
            for dropped in plan.candidates:
                if id(dropped) not in kept:
                    plan.excluded.append(Exclusion(dropped.route.name, "fallbacks disallowed", "no_fallback"))
            plan.candidates = keep
        return plan

    def _route_unfit(self, route: Route, needs: Needs, only, ignore, policy: Policy,
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
                high = quote
                if route.estimate is not None:
                    high = max(quote, route.estimate.token_cost(prompt_high, worst_out))
                return Candidate(route, model, prompt, expected_out, "quoted", float(quote),
                                 exact=(quote, quote, high), pricing=route.estimate, prompt_high=prompt_high,
                                 worst_out=worst_out, prompt_bound=needs.prompt_bound_tokens, quote=quote)
            if route.estimate is None:
                return None
            basis, p = "estimated_quote", route.estimate
        else:
            return None
        return Candidate(route, model, prompt, expected_out, basis, _float_cost(p, prompt, expected_out),
                         pricing=p, prompt_high=prompt_high, worst_out=worst_out,
                         prompt_bound=needs.prompt_bound_tokens)

    def _rank_key(self, c: Candidate, sort: str, order: list[str], model_order: dict[str, int],
                  ordered_models: bool) -> tuple:
        name = c.route.name
        fe_rank = order.index(c.route.front_end) if c.route.front_end in order else len(order)
        # A named model with a `models` fallback list keeps the client's model order.
        model_rank = model_order[c.route.model] if ordered_models else 0
        failure = self.health.failure_rate(name)
        latency = self.health.latency(name) or 0.0
        if sort == "latency":
            return (fe_rank, model_rank, self.health.ttft(name) or latency, c.expected_f)
        if sort == "throughput":
            return (fe_rank, model_rank, latency, c.expected_f)
        return (fe_rank, model_rank, c.expected_f, failure, latency)


def capacity_group(route: Route) -> str:
    # xpay's limits bind its API key, which every xpay route shares.
    return "xpay" if route.front_end == "xpay" else route.name


def _model_unfit(model: Model, needs: Needs, prompt_ctx: int) -> tuple[str, str] | None:
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
    requested_out = needs.max_output or 1
    if prompt_ctx + requested_out > model.context_length:
        return (
            "context_length_exceeded",
            f"about {prompt_ctx} prompt tokens + {requested_out} output exceed {model.id}'s context of "
            f"{model.context_length}",
        )
    return None
