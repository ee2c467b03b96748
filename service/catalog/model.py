"""The catalog's typed shape: models, the routes that reach them, and their price terms."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

MILLION = Decimal(1_000_000)

FRONT_ENDS = ("baseten", "xpay", "orthogonal")
REASONING_MODES = ("none", "opt_in", "default_on", "always_on")


@dataclass(frozen=True, slots=True)
class Features:
    tools: bool = True
    json_mode: bool = False
    structured_outputs: bool = False
    reasoning: str = "none"
    reasoning_efforts: tuple[str, ...] = ()
    vision: bool = False
    tool_calling_recommended: bool = True


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    name: str
    context_length: int
    max_output_tokens: int
    features: Features
    sources: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Pricing:
    """Price terms of one route. Per-token prices are USD per million tokens, exact."""

    kind: str  # per_token | flat | quoted | unknown
    input_per_mtok: Decimal | None = None
    output_per_mtok: Decimal | None = None
    cached_input_per_mtok: Decimal | None = None
    per_call: Decimal | None = None
    # The same prices as floats, per token, for ranking only (never for money).
    float_terms: tuple[float, float, float] = field(init=False, repr=False, compare=False, default=(0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        terms = (
            float(self.input_per_mtok) / 1e6 if self.input_per_mtok is not None else 0.0,
            float(self.output_per_mtok) / 1e6 if self.output_per_mtok is not None else 0.0,
            float(self.per_call) if self.per_call is not None else 0.0,
        )
        object.__setattr__(self, "float_terms", terms)

    def token_cost(self, prompt: int, completion: int, cached: int = 0) -> Decimal | None:
        """Exact cost of a call from its token counts, or None when this route has no token prices."""
        if self.input_per_mtok is None or self.output_per_mtok is None:
            return None
        cached = max(0, min(cached, prompt))
        cached_price = self.cached_input_per_mtok if self.cached_input_per_mtok is not None else self.input_per_mtok
        total = (
            (prompt - cached) * self.input_per_mtok + cached * cached_price + completion * self.output_per_mtok
        ) / MILLION
        return total + (self.per_call or Decimal(0))


@dataclass(frozen=True, slots=True)
class Route:
    model: str
    front_end: str
    pricing: Pricing
    streams: bool
    max_stop: int = 32
    # Per-token prices used to estimate a quoted route when its quote is unavailable.
    estimate: Pricing | None = None
    # "front_end:model", the route's name in plans, metrics and the ledger; read on every plan.
    name: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.front_end}:{self.model}")


@dataclass(frozen=True, slots=True)
class Alias:
    """A name clients send that the catalog does not list (Claude Code asks for Claude models by
    default), mapped to a model or pool: an exact name or a shell-style pattern (`claude-*haiku*`)."""

    match: str
    to: str

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.match)


@dataclass(frozen=True, slots=True)
class Catalog:
    version: str
    effective_from: datetime
    models: dict[str, Model]
    routes: tuple[Route, ...]
    pools: dict[str, tuple[str, ...]]
    by_model: dict[str, tuple[Route, ...]] = field(default_factory=dict)
    aliases: tuple[Alias, ...] = ()

    def routes_for(self, model_id: str) -> tuple[Route, ...]:
        return self.by_model.get(model_id, ())

    def resolve(self, name: str) -> str:
        """The model or pool a requested name stands for: itself when the catalog lists it, else the
        first alias that matches, else the name unchanged (the planner then answers 404)."""
        if name in self.models or name in self.pools:
            return name
        for alias in self.aliases:
            if alias.matches(name):
                return alias.to
        return name

    def find_route(self, front_end: str, model_id: str) -> Route | None:
        for route in self.by_model.get(model_id, ()):
            if route.front_end == front_end:
                return route
        return None
