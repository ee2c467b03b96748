"""Reasoning controls: OpenRouter's `reasoning` object, OpenAI's `reasoning_effort`, and what a model takes.

Clients say what they want in one of three ways: OpenAI's top-level `reasoning_effort`,
OpenRouter's `reasoning` object (`effort`, `max_tokens` as a thinking budget, `enabled`,
`exclude`), or Baseten's own `chat_template_args.enable_thinking`. `check_reasoning` reads the
object into a `ReasoningIntent`; `reasoning_fields` turns the intent into the upstream fields one
model takes, from its catalog features:

- `none`: the model cannot reason; nothing is sent.
- `opt_in`: reasoning is off unless `chat_template_args.enable_thinking` is true: it is set to
  true when reasoning is wanted and to false when it is turned off.
- `default_on` / `always_on`: reasoning runs unless the model can be told otherwise; turning it
  off maps to the model's lowest `reasoning_effort` (which is `none` where the model takes it).
- Models with `reasoning_efforts` get `reasoning_effort`: the requested effort when the model
  takes it, else the nearest one it takes; a token budget maps to the nearest effort.

A budget maps to an effort through the thinking budgets LiteLLM gives each effort (minimal 512,
low 1024, medium 2048, high 4096, xhigh 8192, max 16384 tokens), nearest on a log scale, ties to
the lower (cheaper) effort. OpenRouter's `exclude` does not reach the upstream: the gateway
strips `reasoning_content` from the answer instead (`ChatRequestView.exclude_reasoning`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from service.catalog.model import Features
from service.chat.validate_types import (
    as_int,
    bad_value,
    check_bool,
    check_enum,
    check_int,
    check_keys,
    check_object,
)

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384}
MAX_REASONING_BUDGET = 262_144

_REASONING_KEYS = frozenset({"effort", "max_tokens", "exclude", "enabled"})


@dataclass(frozen=True, slots=True)
class ReasoningIntent:
    """What the client asked of reasoning. `on` is None when it said nothing either way."""

    on: bool | None = None
    effort: str | None = None  # an effort name, or the nearest one to `budget`
    budget: int | None = None  # reasoning.max_tokens
    exclude: bool = False


NO_INTENT = ReasoningIntent()


def nearest_effort(budget: int, efforts: tuple[str, ...] | None = None) -> str:
    """The effort whose thinking budget is nearest `budget` (log scale; ties to the lower)."""
    candidates = [e for e in (efforts or REASONING_EFFORTS) if e in EFFORT_BUDGETS]
    if not candidates:
        raise ValueError("no effort with a budget to choose from")
    if budget <= 0:
        return candidates[0] if "none" not in (efforts or REASONING_EFFORTS) else "none"
    target = math.log2(budget)
    return min(candidates, key=lambda e: (abs(math.log2(EFFORT_BUDGETS[e]) - target), EFFORT_BUDGETS[e]))


def intent_of(reasoning: dict[str, Any] | None, reasoning_effort: str | None) -> ReasoningIntent:
    """The intent of an already-valid `reasoning` object and top-level `reasoning_effort`."""
    effort = reasoning_effort
    budget = None
    enabled = None
    exclude = False
    if reasoning is not None:
        effort = reasoning.get("effort") or effort
        budget = as_int(reasoning.get("max_tokens"))
        enabled = reasoning.get("enabled")
        exclude = reasoning.get("exclude") is True
    if effort is None and budget is not None:
        effort = nearest_effort(budget)
    if enabled is False or effort == "none":
        return ReasoningIntent(on=False, effort="none", budget=budget, exclude=exclude)
    on = True if (enabled or effort is not None) else None
    return ReasoningIntent(on=on, effort=effort, budget=budget, exclude=exclude)


def check_reasoning(value: object, reasoning_effort: str | None) -> ReasoningIntent:
    """Check OpenRouter's `reasoning` object against itself and the top-level `reasoning_effort`."""
    obj = check_object(value, "reasoning")
    check_keys(obj, _REASONING_KEYS, "reasoning")
    effort = obj.get("effort")
    if effort is not None:
        check_enum(effort, "reasoning.effort", REASONING_EFFORTS)
    budget = obj.get("max_tokens")
    if budget is not None:
        budget = check_int(budget, "reasoning.max_tokens", 0, MAX_REASONING_BUDGET)
    enabled = obj.get("enabled")
    if enabled is not None:
        check_bool(enabled, "reasoning.enabled")
    exclude = obj.get("exclude")
    if exclude is not None:
        check_bool(exclude, "reasoning.exclude")
    if effort is not None and reasoning_effort is not None and effort != reasoning_effort:
        raise bad_value(
            "reasoning.effort", f"'{effort}' contradicts the top-level 'reasoning_effort' '{reasoning_effort}'."
        )
    # The top-level reasoning_effort counts as the object's effort: OpenRouter treats them as one.
    either = effort if effort is not None else reasoning_effort
    if either is not None and budget is not None:
        raise bad_value("reasoning", "give either an effort or 'max_tokens', not both.")
    if enabled is False and ((either is not None and either != "none") or (budget is not None and budget > 0)):
        raise bad_value("reasoning.enabled", "reasoning cannot be disabled and given an effort or budget at once.")
    if enabled is True and (either == "none" or budget == 0):
        raise bad_value("reasoning.enabled", "reasoning cannot be enabled with no effort or budget.")
    return intent_of(obj, reasoning_effort)


def _ordered(efforts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(e for e in REASONING_EFFORTS if e in efforts)


def _effort_for(intent: ReasoningIntent, efforts: tuple[str, ...]) -> str | None:
    if intent.effort is None:
        return None
    if intent.effort in efforts:
        return intent.effort
    if intent.effort in EFFORT_BUDGETS:
        return nearest_effort(EFFORT_BUDGETS[intent.effort], efforts)
    return None


def reasoning_fields(reasoning: dict[str, Any] | None, reasoning_effort: str | None,
                     features: Features) -> dict[str, Any]:
    """The upstream fields that carry this request's reasoning wishes to a model with `features`.

    `reasoning` and `reasoning_effort` are as the (validated) request sent them. The result holds
    `reasoning_effort` and/or `chat_template_args` (only the keys to set there); merge it into the
    upstream body with `with_reasoning`. An empty result means: send nothing about reasoning."""
    intent = intent_of(reasoning, reasoning_effort)
    if features.reasoning == "none" or intent.on is None:
        return {}
    efforts = _ordered(features.reasoning_efforts)
    out: dict[str, Any] = {}
    if features.reasoning == "opt_in":
        out["chat_template_args"] = {"enable_thinking": intent.on}
    if not efforts:
        return out
    if intent.on is False:
        # Off is said by enable_thinking on an opt-in model; an effort model runs at its least.
        if features.reasoning != "opt_in" or efforts[0] == "none":
            out["reasoning_effort"] = efforts[0]
        return out
    effort = _effort_for(intent, efforts)
    if effort is not None:
        out["reasoning_effort"] = effort
    return out


def with_reasoning(upstream: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """`upstream` with `reasoning_fields`' output applied: `chat_template_args` merged key by key
    (the client's other template arguments stay), `reasoning_effort` replaced."""
    if not fields:
        return upstream
    out = dict(upstream)
    if "reasoning_effort" in fields:
        out["reasoning_effort"] = fields["reasoning_effort"]
    args = fields.get("chat_template_args")
    if args:
        out["chat_template_args"] = {**(upstream.get("chat_template_args") or {}), **args}
    return out
