"""What a request needs from a route, derived once from the validated body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.chat import params as _params
from service.routing.estimate import DEFAULT_MAX_OUTPUT, prompt_sizes

# From the one parameter table (service.chat.params): what a marketplace route receives, and what
# no route receives as sent (dropped, translated, or the gateway's own). `provider.require_parameters`
# excludes a marketplace route for any other parameter sent.
MARKETPLACE_PARAMS = _params.MARKETPLACE_PARAMS
GATEWAY_PARAMS = _params.NOT_FORWARDED


@dataclass(slots=True)
class Needs:
    base_prompt_tokens: int
    prompt_bound_tokens: int  # never exceeded: what hard budgets reserve for
    max_output: int | None  # what the client asked for
    worst_output: int  # bounds the cost: the request's max, else Baseten's default
    tools: bool
    response_format: str | None
    images: int
    audio: int
    reasoning_effort: str | None
    stream: bool
    stop_count: int
    sent_params: frozenset[str]


def derive_needs(body: dict[str, Any], view: Any) -> Needs:
    max_output = view.max_output_tokens
    estimate, bound = prompt_sizes(body, view.image_parts)
    return Needs(
        base_prompt_tokens=estimate,
        prompt_bound_tokens=bound,
        max_output=max_output,
        worst_output=max_output if max_output is not None else DEFAULT_MAX_OUTPUT,
        tools=view.has_tools,
        response_format=view.response_format_kind,
        images=view.image_parts,
        audio=view.audio_parts,
        reasoning_effort=view.reasoning_effort,
        stream=view.stream,
        stop_count=view.stop_count,
        sent_params=view.sent_params,
    )
