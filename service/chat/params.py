"""Every top-level chat-completions parameter, and what the gateway does with it: one table.

Sources: OpenAI's chat-completions request (openai-python 3.54 `CompletionCreateParams`),
Baseten's ChatCompletionRequest schema (seed 002; `additionalProperties: false`, plus the
documented `max_completion_tokens` and `reasoning_effort`), the marketplaces' published input
schemas (seeds 000 and 003: the same fields), and OpenRouter's `reasoning` and `provider`.

Each parameter has one fate:
- EVERY_ROUTE: forwarded to Baseten and to the marketplaces (xpay, Orthogonal).
- BASETEN: forwarded to Baseten only; a marketplace route drops it (and so fails
  `provider.require_parameters`).
- TRANSLATED: turned into other fields per model before any upstream (`reasoning_fields`).
- GATEWAY: read by the gateway itself (routing), never sent upstream.
- DROPPED: accepted, and dropped before any upstream; the reason says why that is harmless.
  Some of these refuse the values that would change the answer (the reason names them).
- REFUSED: any non-null value gets a 400 naming the parameter, with the reason.

`upstream_fields(body)` is the body every upstream may see: the validated body without the
dropped, translated and gateway-only fields (and without the few dropped nested keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.chat.reasoning import ReasoningIntent, intent_of, reasoning_fields, with_reasoning

__all__ = [
    "ACCEPTED_PARAMS",
    "MARKETPLACE_PARAMS",
    "NOT_FORWARDED",
    "PARAMS",
    "Fate",
    "Param",
    "ReasoningIntent",
    "intent_of",
    "reasoning_fields",
    "upstream_fields",
    "with_reasoning",
]


class Fate(StrEnum):
    EVERY_ROUTE = "forwarded to Baseten and the marketplaces"
    BASETEN = "forwarded to Baseten only"
    TRANSLATED = "translated before any upstream"
    GATEWAY = "read by the gateway, never sent"
    DROPPED = "accepted and dropped before any upstream"
    REFUSED = "refused with a 400"


@dataclass(frozen=True, slots=True)
class Param:
    fate: Fate
    why: str = ""


_FWD = Param(Fate.EVERY_ROUTE)
_ENGINE = Param(Fate.EVERY_ROUTE, "a vLLM / TRT-LLM engine parameter in Baseten's schema")

PARAMS: dict[str, Param] = {
    # OpenAI's parameters that Baseten's engines take as they are.
    "model": Param(Fate.EVERY_ROUTE, "replaced by the routed model's slug"),
    "messages": Param(Fate.EVERY_ROUTE, "text parts lose `prompt_cache_breakpoint` (see prompt_cache_options)"),
    "stream": Param(Fate.EVERY_ROUTE, "the marketplaces are always called without streaming; the gateway streams"),
    "stream_options": Param(Fate.EVERY_ROUTE, "`include_obfuscation` is dropped: Baseten's schema lacks it and "
                            "the gateway's own framing is unpadded"),
    "max_tokens": _FWD,
    "max_completion_tokens": Param(Fate.EVERY_ROUTE, "the marketplaces get it as max_tokens"),
    "temperature": _FWD,
    "top_p": _FWD,
    "frequency_penalty": _FWD,
    "presence_penalty": _FWD,
    "logit_bias": _FWD,
    "logprobs": Param(Fate.EVERY_ROUTE, "relayed in the answer when the upstream returns them"),
    "top_logprobs": Param(Fate.EVERY_ROUTE, "relayed in the answer when the upstream returns them"),
    "n": Param(Fate.EVERY_ROUTE, "only 1: Baseten generates one choice"),
    "seed": _FWD,
    "stop": Param(Fate.EVERY_ROUTE, "routes taking fewer stop sequences (Orthogonal: 4) are skipped"),
    "tools": _FWD,
    "tool_choice": _FWD,
    "parallel_tool_calls": _FWD,
    "response_format": _FWD,
    "reasoning_effort": Param(Fate.EVERY_ROUTE, "models without that effort are not routed to; see reasoning"),
    "user": Param(Fate.EVERY_ROUTE, "Baseten's schema takes it for abuse tracking; stored with usage"),
    # Baseten's engine extras.
    "best_of": Param(Fate.EVERY_ROUTE, "only 1"),
    "top_k": _ENGINE,
    "top_p_min": _ENGINE,
    "min_p": _ENGINE,
    "repetition_penalty": _ENGINE,
    "length_penalty": _ENGINE,
    "early_stopping": _ENGINE,
    "bad": _ENGINE,
    "bad_token_ids": _ENGINE,
    "stop_token_ids": _ENGINE,
    "include_stop_str_in_output": _ENGINE,
    "ignore_eos": _ENGINE,
    "min_tokens": _ENGINE,
    "skip_special_tokens": _ENGINE,
    "spaces_between_special_tokens": _ENGINE,
    "truncate_prompt_tokens": _ENGINE,
    "echo": _ENGINE,
    "add_generation_prompt": _ENGINE,
    "add_special_tokens": _ENGINE,
    "documents": _ENGINE,
    "chat_template": _ENGINE,
    "chat_template_args": Param(Fate.EVERY_ROUTE, "`enable_thinking` may be set from reasoning"),
    "disaggregated_params": _ENGINE,
    # OpenRouter's reasoning controls.
    "reasoning": Param(Fate.TRANSLATED, "effort, max_tokens and enabled become each model's own controls "
                       "(reasoning_fields); exclude strips reasoning_content from the answer"),
    # Switchyard's routing extensions, named as OpenRouter's.
    "provider": Param(Fate.GATEWAY, "routing preferences"),
    "models": Param(Fate.GATEWAY, "fallback models, in order"),
    # OpenAI's parameters that no route can use and that do not change the answer.
    "metadata": Param(Fate.DROPPED, "Baseten's schema has no metadata; the gateway keeps it for usage attribution"),
    "store": Param(Fate.DROPPED, "OpenAI's storage for distillation and evals; no route stores completions"),
    "service_tier": Param(Fate.DROPPED, "OpenAI's processing tiers; Baseten has one tier, so every value is "
                          "served as the default"),
    "prompt_cache_key": Param(Fate.DROPPED, "Baseten caches shared prompt prefixes by itself, without a key"),
    "prompt_cache_retention": Param(Fate.DROPPED, "Baseten's prefix cache has no client-set lifetime"),
    "prompt_cache_options": Param(Fate.DROPPED, "Baseten's prefix cache takes no breakpoints or lifetimes"),
    "safety_identifier": Param(Fate.DROPPED, "OpenAI's abuse tracking id; `user` carries one to Baseten"),
    "prediction": Param(Fate.DROPPED, "a predicted output only makes OpenAI faster; the answer is the same "
                        "without it"),
    "modalities": Param(Fate.DROPPED, "text is the only output any route produces; a request for audio is "
                        "refused"),
    "verbosity": Param(Fate.DROPPED, "'medium' is every open model's own length; 'low' and 'high' are refused, "
                       "no route can honour them (ask for the length in the prompt, bound it with max_tokens)"),
    # OpenAI's parameters that would change the answer and that no route can honour.
    "audio": Param(Fate.REFUSED, "no route produces audio output"),
    "web_search_options": Param(Fate.REFUSED, "no route searches the web"),
    "moderation": Param(Fate.REFUSED, "no route runs OpenAI's moderation on input or output"),
    "functions": Param(Fate.REFUSED, "deprecated by OpenAI; send `tools` instead"),
    "function_call": Param(Fate.REFUSED, "deprecated by OpenAI; send `tool_choice` instead"),
}

ACCEPTED_PARAMS = frozenset(name for name, p in PARAMS.items() if p.fate is not Fate.REFUSED)
# Everything a marketplace route receives (routing's `require_parameters` compares against it).
MARKETPLACE_PARAMS = frozenset(name for name, p in PARAMS.items() if p.fate is Fate.EVERY_ROUTE)
# Sent to no upstream as they are, so no route is preferred for taking them.
NOT_FORWARDED = frozenset(
    name for name, p in PARAMS.items() if p.fate in (Fate.TRANSLATED, Fate.GATEWAY, Fate.DROPPED)
)
# Integers a client may spell as whole floats (5.0); upstreams are sent the plain integer.
INTEGER_PARAMS = ("max_tokens", "max_completion_tokens", "top_logprobs", "n", "seed", "best_of", "top_k",
                  "min_tokens", "truncate_prompt_tokens")
INTEGER_LIST_PARAMS = ("bad_token_ids", "stop_token_ids")
_STREAM_OPTIONS_DROPPED = ("include_obfuscation",)
_PART_KEYS_DROPPED = ("prompt_cache_breakpoint",)


def upstream_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A validated body as any upstream may see it: without the dropped, translated and
    gateway-only parameters, without the dropped nested keys, and with integers spelled as such.
    `body` is not changed; the parts that are changed are copied, the rest is shared."""
    out = {k: v for k, v in body.items() if k not in NOT_FORWARDED}
    for name in INTEGER_PARAMS:
        if type(out.get(name)) is float:
            out[name] = int(out[name])
    for name in INTEGER_LIST_PARAMS:
        values = out.get(name)
        if isinstance(values, list) and any(type(v) is float for v in values):
            out[name] = [int(v) if type(v) is float else v for v in values]
    options = out.get("stream_options")
    if isinstance(options, dict) and any(k in options for k in _STREAM_OPTIONS_DROPPED):
        out["stream_options"] = {k: v for k, v in options.items() if k not in _STREAM_OPTIONS_DROPPED}
    messages = out.get("messages")
    if isinstance(messages, list):
        cleaned = _without_part_keys(messages)
        if cleaned is not None:
            out["messages"] = cleaned
    return out


def _without_part_keys(messages: list[Any]) -> list[Any] | None:
    """The messages with the dropped content-part keys removed, or None when none carries one."""
    out: list[Any] | None = None
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or not any(
            isinstance(p, dict) and any(k in p for k in _PART_KEYS_DROPPED) for p in content
        ):
            continue
        if out is None:
            out = list(messages)
        parts = [
            {k: v for k, v in p.items() if k not in _PART_KEYS_DROPPED} if isinstance(p, dict) else p
            for p in content
        ]
        out[index] = {**message, "content": parts}
    return out
