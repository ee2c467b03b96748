"""The body one route is sent: the client's request, for the routed model, with the output bound
its reservation assumed.

When the client sets no output limit, the gateway sends the bound its budget reservation and
worst-case cost assumed (the smaller of Baseten's documented default, 4,096, and the model's
maximum), so no upstream can generate past what was reserved.
"""

from __future__ import annotations

from typing import Any

from service.routing.planner import Candidate

_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")


def body_for_route(body: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    out = dict(body)
    route = candidate.route
    out["model"] = route.model
    if route.front_end != "baseten" and out.get("max_completion_tokens") is not None:
        # The marketplaces' input schemas only know max_tokens.
        out["max_tokens"] = out.pop("max_completion_tokens")
    if all(out.get(name) is None for name in _LIMIT_FIELDS) and candidate.worst_output > 0:
        out["max_tokens"] = candidate.worst_output
    return out
