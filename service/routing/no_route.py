"""The error a client gets when no route can serve its request: it says why."""

from __future__ import annotations

from service.catalog.model import Catalog
from service.errors import GatewayError
from service.routing.plan import Plan

_FEATURE_CODES = {
    "unsupported_tools": ("tools", "tools"),
    "unsupported_json_mode": ("response_format", "JSON mode (response_format json_object)"),
    "unsupported_structured_outputs": ("response_format", "structured outputs (response_format json_schema)"),
    "unsupported_vision": ("messages", "image input"),
    "unsupported_audio": ("messages", "audio input"),
    "unsupported_reasoning_effort": ("reasoning_effort", "reasoning_effort"),
    "max_output": ("max_tokens", "the requested max_tokens"),
    "param_limit": ("stop", "this many stop sequences"),
    "require_parameters": ("provider.require_parameters", "every parameter sent"),
}


_CHOSEN_CODES = frozenset({"provider_only", "provider_ignore", "no_fallback", "policy", "front_end_disabled",
                           "price_unknown"})
# Exclusions that hold until an operator changes the configuration or the catalog.
_UNSERVABLE_CODES = frozenset({"front_end_disabled", "price_unknown"})


def _unservable(plan: Plan, catalog: Catalog) -> bool:
    """Every route was out for want of a configured front end or of any price. A quoted route whose
    dry run failed just now is out for a passing reason, so that is not this case."""
    for e in plan.excluded:
        if e.code not in _UNSERVABLE_CODES:
            return False
        if e.code == "price_unknown":
            front_end, _, model = e.route.partition(":")
            route = catalog.find_route(front_end, model)
            if route is None or route.pricing.kind != "unknown":
                return False
    return bool(plan.excluded)


def no_route_error(plan: Plan, catalog: Catalog) -> GatewayError:
    codes = {e.code for e in plan.excluded}
    if "context_length_exceeded" in codes and codes <= {"context_length_exceeded"} | set(_FEATURE_CODES):
        # Only when even the fewest tokens the prompt may count exceed every eligible context.
        too_long = [e for e in plan.excluded if e.code == "context_length_exceeded"]
        largest = max(too_long, key=lambda e: catalog.models[e.route.split(":", 1)[1]].context_length)
        context = catalog.models[largest.route.split(":", 1)[1]].context_length
        prompt, output = largest.prompt_tokens or 0, largest.output_tokens or 0
        return GatewayError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested about "
            f"{prompt + output} tokens ({prompt} in the messages, {output} in the completion). "
            "Please reduce the length of the messages or completion.",
            code="context_length_exceeded",
            param="messages",
        )
    if "max_cost" in codes and not codes & {"circuit_open", "at_capacity"}:
        return GatewayError(
            402,
            "Every route that could serve this request costs more than provider.max_cost_usd in the worst case.",
            type="insufficient_quota",
            code="max_cost_exceeded",
            param="provider.max_cost_usd",
            headers={"x-should-retry": "false"},
        )
    # Routes the client or its tenant ruled out say nothing about why the rest failed.
    telling = codes - _CHOSEN_CODES
    for code, (param, what) in _FEATURE_CODES.items():
        if code in telling and not (telling - set(_FEATURE_CODES) - {"context_length_exceeded"}):
            return GatewayError(
                400,
                f"No model eligible for `{plan.requested_model}` supports {what}. "
                + "; ".join(sorted({e.reason for e in plan.excluded if e.code == code}))[:600],
                code="unsupported_feature",
                param=param,
            )
    if _unservable(plan, catalog):
        # Permanent until the operator acts: a 404 (sent with x-should-retry: false), which the
        # OpenAI SDKs do not retry, where a 503 would be retried three times for nothing.
        return GatewayError(
            404,
            f"`{plan.requested_model}` is not servable here: none of its routes has a configured front end "
            "and a price.",
            type="not_found_error",
            code="model_not_servable",
            param="model",
        )
    transient = {"circuit_open", "at_capacity"}
    if codes & transient:
        return GatewayError(
            503,
            "Every route for this request is temporarily unavailable (open circuits or capacity limits); "
            "retry shortly.",
            type="server_error",
            code="no_route_available",
            headers={"retry-after": "5"},
        )
    reasons = "; ".join(f"{e.route}: {e.reason}" for e in plan.excluded[:8])
    return GatewayError(
        400 if codes - transient - {"front_end_disabled", "price_unknown"} else 503,
        f"No route can serve this request. {reasons}",
        type="invalid_request_error",
        code="no_route",
        param="model",
    )
