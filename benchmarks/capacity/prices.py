"""What a call really costs on a route, and what a marketplace quotes for it (the trace's truth)."""

from __future__ import annotations

from decimal import Decimal

from benchmarks.capacity.trace import DEFAULT_HIDDEN_PRICE, HIDDEN_PRICES, Request, Usage
from service.catalog.model import Pricing, Route
from service.routing.estimate import DEFAULT_MAX_OUTPUT

MILLION = Decimal(1_000_000)


class Prices:
    """`markup`: Orthogonal's charge over the per-token price of the same model (unknown; a knob)."""

    def __init__(self, markup: Decimal) -> None:
        self.markup = markup

    def per_token(self, route: Route) -> Pricing | None:
        """The per-token terms a quoted route really charges by: the model's Baseten prices where
        the catalog has them, else the trace's hidden ones."""
        if route.estimate is not None:
            return route.estimate
        price_in, price_out = HIDDEN_PRICES.get(route.model, DEFAULT_HIDDEN_PRICE)
        return Pricing(kind="per_token", input_per_mtok=Decimal(str(price_in)), output_per_mtok=Decimal(str(price_out)))

    def cost(self, route: Route, usage: Usage) -> Decimal | None:
        """The charge for this call; None when the route has no price at all."""
        pricing = route.pricing
        if pricing.kind == "flat":
            return pricing.per_call
        if pricing.kind == "per_token":
            return pricing.token_cost(usage.prompt, usage.completion)
        if pricing.kind == "quoted":
            terms = self.per_token(route)
            cost = terms.token_cost(usage.prompt, usage.completion) if terms else None
            return cost * self.markup if cost is not None else None
        return None

    def quote(self, route: Route, req: Request, estimated_prompt: int) -> Decimal | None:
        """A dry run's quote, as the stand-in makes it: the prompt as estimated and the whole max_tokens."""
        terms = self.per_token(route)
        if terms is None:
            return None
        cost = terms.token_cost(estimated_prompt, req.max_tokens or DEFAULT_MAX_OUTPUT)
        return (cost * self.markup).quantize(Decimal("0.000001")) if cost is not None else None
