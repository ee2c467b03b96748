"""GET /v1/models and GET /v1/models/{id}: what the calling tenant can use, with context, features
and prices per route, and the pools and `auto` that route across them.

Only servable models are offered: a model needs a route whose front end is configured (and not
denied to the tenant) and that has a price. A model without one answers 404 like an unknown
model, never a 503 the OpenAI SDKs would retry.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from service.api.common import authenticate, json_response, runtime
from service.auth.principal import Principal
from service.catalog.model import Catalog, Model, Route
from service.catalog.servable import servable
from service.errors import GatewayError
from service.input_limits import echo
from service.routing.planner import VIRTUAL_AUTO


def _price(route: Route) -> dict[str, Any]:
    p = route.pricing
    out: dict[str, Any] = {"kind": p.kind}
    if p.kind == "per_token":
        out.update(input_per_mtok=str(p.input_per_mtok), output_per_mtok=str(p.output_per_mtok))
        if p.cached_input_per_mtok is not None:
            out["cached_input_per_mtok"] = str(p.cached_input_per_mtok)
    elif p.kind == "flat":
        out["per_call_usd"] = str(p.per_call)
    elif p.kind == "unknown":
        out["note"] = "price not published; this route is not used until an operator sets one"
    return out


def model_entry(catalog: Catalog, model: Model, enabled: frozenset[str]) -> dict[str, Any]:
    f = model.features
    return {
        "id": model.id,
        "object": "model",
        "created": int(catalog.effective_from.timestamp()),
        "owned_by": "baseten",
        "kind": "model",
        "name": model.name,
        "context_length": model.context_length,
        "max_output_tokens": model.max_output_tokens,
        "features": {
            "tools": f.tools,
            "tool_calling_recommended": f.tool_calling_recommended,
            "json_mode": f.json_mode,
            "structured_outputs": f.structured_outputs,
            "reasoning": f.reasoning,
            "reasoning_efforts": list(f.reasoning_efforts),
            "vision": f.vision,
        },
        "routes": [
            {"front_end": r.front_end, "enabled": r.front_end in enabled, "streams_natively": r.streams,
             "max_stop": r.max_stop, "pricing": _price(r)}
            for r in catalog.routes_for(model.id)
        ],
        **({"note": model.note} if model.note else {}),
    }


def _virtual_entry(catalog: Catalog, name: str, members: list[str]) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": int(catalog.effective_from.timestamp()),
        "owned_by": "switchyard",
        "kind": "auto" if name == VIRTUAL_AUTO else "pool",
        "models": members,
    }


class Offer:
    """The models, pools and `auto` one tenant is offered, in catalog order."""

    def __init__(self, catalog: Catalog, adapters: frozenset[str], principal: Principal) -> None:
        self.catalog = catalog
        self.enabled = adapters - principal.denied_front_ends
        allowed = principal.allowed_models
        self.models = [m for m in catalog.models.values()
                       if (allowed is None or m.id in allowed) and servable(catalog, m.id, self.enabled)]
        ids = {m.id for m in self.models}
        self.pools = {name: [m for m in members if m in ids] for name, members in catalog.pools.items()}
        self.pools = {name: members for name, members in self.pools.items() if members}
        if self.models and VIRTUAL_AUTO not in self.pools:
            self.pools[VIRTUAL_AUTO] = [m.id for m in self.models]

    def entries(self) -> list[dict[str, Any]]:
        out = [model_entry(self.catalog, m, self.enabled) for m in self.models]
        out += [_virtual_entry(self.catalog, name, members) for name, members in self.pools.items()]
        return out

    def aliases(self) -> list[dict[str, str]]:
        """The names clients may send that the catalog maps to a model or pool this tenant has."""
        return [{"match": a.match, "to": a.to} for a in self.catalog.aliases
                if a.to in self.pools or any(m.id == a.to for m in self.models)]

    def entry(self, model_id: str) -> dict[str, Any] | None:
        resolved = self.catalog.resolve(model_id)
        for model in self.models:
            if model.id == resolved:
                found = model_entry(self.catalog, model, self.enabled)
                break
        else:
            members = self.pools.get(resolved)
            if not members:
                return None
            found = _virtual_entry(self.catalog, resolved, members)
        if resolved != model_id:
            # An alias (Claude Code asks for Claude models): named as asked, saying what serves it.
            found = {**found, "id": model_id, "alias_of": resolved}
        return found


def _offer(request: Request[Any, Any, Any], principal: Principal) -> Offer:
    rt = runtime(request)
    return Offer(rt.catalog, frozenset(rt.adapters), principal)


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> Response[Any]:
    offer = _offer(request, await authenticate(request))
    return json_response({"object": "list", "data": offer.entries(), "aliases": offer.aliases(),
                          "price_version": offer.catalog.version})


@get("/v1/models/{model_id:path}")
async def retrieve_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> Response[Any]:
    """OpenAI's `models.retrieve`; slugs hold slashes, so the id is the rest of the path."""
    offer = _offer(request, await authenticate(request))
    model = model_id.removeprefix("/")
    entry = offer.entry(model)
    if entry is None:
        known = model in offer.catalog.models or model in offer.catalog.pools or model == VIRTUAL_AUTO
        why = "is not servable here (no configured route with a price)" if known else "does not exist"
        raise GatewayError(404, f"The model {echo(model)} {why}, or you do not have access to it.",
                           type="not_found_error", code="model_not_found", param="model")
    return json_response(entry)
