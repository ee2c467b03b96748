"""What a request needs from a route, derived once from the validated body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.routing.estimate import DEFAULT_MAX_OUTPUT, prompt_sizes

# Parameters each marketplace's published input schema lists (seeds 000 and 003); anything
# else sent to them is dropped, which `provider.require_parameters` forbids.
MARKETPLACE_PARAMS = frozenset(
    {
        "model", "messages", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens",
        "n", "presence_penalty", "response_format", "seed", "stop", "stream", "stream_options",
        "temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls", "user", "top_k",
        "top_p_min", "min_p", "repetition_penalty", "length_penalty", "early_stopping", "bad",
        "bad_token_ids", "stop_token_ids", "include_stop_str_in_output", "ignore_eos", "min_tokens",
        "skip_special_tokens", "spaces_between_special_tokens", "truncate_prompt_tokens", "echo",
        "add_generation_prompt", "add_special_tokens", "documents", "chat_template",
        "chat_template_args", "best_of", "disaggregated_params", "reasoning_effort",
        # Translated to max_tokens by the marketplace adapters.
        "max_completion_tokens",
    }
)
GATEWAY_PARAMS = frozenset({"provider", "models"})


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
