"""GET /v1/models: the models the calling tenant may use, with context, features and prices."""

from __future__ import annotations

from litestar import Request, Response, get

from service.api.common import authenticate, json_response, runtime
from service.catalog.model import Catalog, Model, Route


def _price(route: Route) -> dict:
    p = route.pricing
    out: dict = {"kind": p.kind}
    if p.kind == "per_token":
        out.update(input_per_mtok=str(p.input_per_mtok), output_per_mtok=str(p.output_per_mtok))
        if p.cached_input_per_mtok is not None:
            out["cached_input_per_mtok"] = str(p.cached_input_per_mtok)
    elif p.kind == "flat":
        out["per_call_usd"] = str(p.per_call)
    elif p.kind == "unknown":
        out["note"] = "price not published; this route is not used until an operator sets one"
    return out


def model_entry(catalog: Catalog, model: Model, enabled: frozenset[str]) -> dict:
    f = model.features
    return {
        "id": model.id,
        "object": "model",
        "created": int(catalog.effective_from.timestamp()),
        "owned_by": "baseten",
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


@get("/v1/models")
async def list_models(request: Request) -> Response:
    rt = runtime(request)
    principal = await authenticate(request)
    allowed = principal.allowed_models
    enabled = frozenset(rt.adapters) - principal.denied_front_ends
    data = [
        model_entry(rt.catalog, m, enabled)
        for m in rt.catalog.models.values()
        if allowed is None or m.id in allowed
    ]
    return json_response({"object": "list", "data": data, "price_version": rt.catalog.version})
