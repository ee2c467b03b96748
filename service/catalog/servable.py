"""Which models a gateway can serve: a model needs at least one route that is enabled and priced."""

from __future__ import annotations

from service.catalog.model import Catalog, Route

# A quoted route is priced at request time (Orthogonal's dry run); only `unknown` never is.
PRICED_KINDS = frozenset({"per_token", "flat", "quoted"})


def route_usable(route: Route, front_ends: frozenset[str]) -> bool:
    """The route's front end is configured (and allowed) and the route has, or gets, a price."""
    return route.front_end in front_ends and route.pricing.kind in PRICED_KINDS


def servable(catalog: Catalog, model_id: str, front_ends: frozenset[str]) -> bool:
    return any(route_usable(r, front_ends) for r in catalog.routes_for(model_id))
