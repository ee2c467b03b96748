"""The body one route is sent: the client's request as upstreams may see it, for the routed model,
with its reasoning wishes in that model's own controls and the output bound its reservation assumed.

When the client sets no output limit, the gateway sends the bound its budget reservation and
worst-case cost assumed (the smaller of Baseten's documented default, 4,096, and the model's
maximum), so no upstream can generate past what was reserved.
"""

from __future__ import annotations

from typing import Any

from service.chat.params import upstream_fields
from service.chat.reasoning import reasoning_fields, with_reasoning
from service.routing.plan import Candidate

_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")


def body_for_route(body: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    route = candidate.route
    out = upstream_fields(body)
    out = with_reasoning(out, reasoning_fields(body.get("reasoning"), body.get("reasoning_effort"),
                                               candidate.model.features))
    out["model"] = route.model
    if route.front_end != "baseten" and out.get("max_completion_tokens") is not None:
        # The marketplaces' input schemas only know max_tokens.
        out["max_tokens"] = out.pop("max_completion_tokens")
    if all(out.get(name) is None for name in _LIMIT_FIELDS) and candidate.worst_output > 0:
        out["max_tokens"] = candidate.worst_output
    return out
