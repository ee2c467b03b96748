"""The state a plan depends on (catalog, enabled front ends, circuits, capacity, calibration, tenant
policy, quotes), built from data so hypothesis can generate and shrink it, and request bodies."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from hypothesis import strategies as st

from service.catalog.loader import default_catalog_text, parse_catalog
from service.catalog.model import FRONT_ENDS, Catalog
from service.chat.validate import REASONING_EFFORTS
from service.chat.validate_provider import SORTS
from service.errors import ErrorKind
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.planner import Planner, Policy, capacity_group

ALL_FRONT_ENDS = frozenset(FRONT_ENDS)

TOOL = {
    "type": "function",
    "function": {
        "name": "square_root",
        "description": "Calculates and return the square root of a number",
        "parameters": {
            "type": "object",
            "properties": {"number": {"type": "number"}},
            "required": ["number"],
        },
    },
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"value": {"type": "number"}}},
    },
}
IMAGE_PART = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
AUDIO_PART = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
_FILLER = "The quick brown fox jumps over the lazy dog; "


@cache
def _default_raw_text() -> str:
    return default_catalog_text()


def default_raw() -> dict[str, Any]:
    return json.loads(_default_raw_text())


@cache
def default_catalog() -> Catalog:
    return parse_catalog(default_raw())


def text_of(chars: int) -> str:
    return (_FILLER * (chars // len(_FILLER) + 1))[:chars]


def user_message(chars: int, images: int = 0, audio: int = 0) -> dict[str, Any]:
    if not images and not audio:
        return {"role": "user", "content": text_of(chars)}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text_of(chars)}]
    parts += [IMAGE_PART] * images + [AUDIO_PART] * audio
    return {"role": "user", "content": parts}


@dataclass
class World:
    """Everything besides the request that decides a plan."""

    catalog: Catalog
    enabled: frozenset[str] = ALL_FRONT_ENDS
    health: HealthBoard = field(default_factory=lambda: HealthBoard(clock=lambda: 1_000.0))
    capacity: CapacityBoard = field(default_factory=CapacityBoard)
    calibration: Calibration = field(default_factory=Calibration)
    policy: Policy = field(default_factory=Policy)
    quotes: dict[str, Decimal] | None = None

    def planner(self) -> Planner:
        return Planner(
            self.catalog,
            enabled_front_ends=self.enabled,
            health=self.health,
            capacity=self.capacity,
            calibration=self.calibration,
        )

    def open_circuit(self, route_name: str) -> None:
        # The operator's key refused: the breaker opens at once.
        self.health.failure(route_name, ErrorKind.OPERATOR_AUTH)

    def exhaust(self, group: str, by_rate: bool) -> None:
        if by_rate:
            self.capacity.configure(group, rpm=1, concurrency=None)
        else:
            self.capacity.configure(group, rpm=None, concurrency=1)
        assert self.capacity.acquire(group, group)


def default_world() -> World:
    return World(catalog=default_catalog())


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True about `percent` times in a hundred; shrinks towards False (the plainer case).

    Hypothesis draws small integers and booleans far from uniformly, so frequencies that matter
    for coverage are drawn from a uniform choice instead."""
    return draw(st.sampled_from(range(100))) >= 100 - percent


# ---- catalog variants ---------------------------------------------------------------------------

_money_per_mtok = st.decimals(min_value=0, max_value=20, places=2).map(lambda d: f"{d:f}")
_money_per_call = st.decimals(min_value=0, max_value=Decimal("0.1"), places=4).map(lambda d: f"{d:f}")


@st.composite
def _pricing(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["per_token", "flat", "quoted", "unknown"]))
    if kind == "per_token":
        pricing = {
            "kind": kind,
            "input_per_mtok": draw(_money_per_mtok),
            "output_per_mtok": draw(_money_per_mtok),
        }
        if draw(st.booleans()):
            pricing["cached_input_per_mtok"] = draw(_money_per_mtok)
        return pricing
    if kind == "flat":
        return {"kind": kind, "per_call": draw(_money_per_call)}
    return {"kind": kind}


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    """The default catalog, or a variant: a random subset of its routes, some with random prices."""
    raw = default_raw()
    if not chance(draw, 60):
        return default_catalog()
    routes = raw["routes"]
    keep = draw(st.lists(st.sampled_from(range(10)), min_size=len(routes), max_size=len(routes)))
    kept = []
    for original, roll in zip(routes, keep, strict=True):
        if roll == 0:
            continue  # about one route in ten removed
        route = copy.deepcopy(original)
        if roll >= 7:
            route["pricing"] = draw(_pricing())
        kept.append(route)
    raw["routes"] = kept
    return parse_catalog(raw)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """A catalog (default or variant) with random enabled front ends, open circuits, exhausted or
    limited capacity, learned calibration, Orthogonal quotes and tenant policy."""
    catalog = draw(catalogs())
    names = sorted(r.name for r in catalog.routes)
    model_ids = sorted(catalog.models)
    world = World(catalog=catalog)
    if chance(draw, 25):
        some = 1 if chance(draw, 80) else 0
        world.enabled = draw(st.frozensets(st.sampled_from(FRONT_ENDS), min_size=some))
    if names:
        for name in draw(st.sets(st.sampled_from(names), max_size=8)) if chance(draw, 50) else ():
            world.open_circuit(name)
        groups = sorted({capacity_group(r) for r in catalog.routes})
        for group in draw(st.sets(st.sampled_from(groups), max_size=4)) if chance(draw, 40) else ():
            world.exhaust(group, by_rate=draw(st.booleans()))
        for group in draw(st.sets(st.sampled_from(groups), max_size=3)) if chance(draw, 30) else ():
            if world.capacity.group(group) is None:
                world.capacity.configure(group, rpm=100, concurrency=5)  # limited, with room
    learned = draw(st.dictionaries(
        st.sampled_from(model_ids),
        st.tuples(st.floats(0.5, 2.0), st.integers(1, 20_000)),
        max_size=5,
    ))
    for model_id, (ratio, completion) in learned.items():
        world.calibration.observe(model_id, 1_000, int(1_000 * ratio), completion)
    orthogonal = [n for n in names if n.startswith("orthogonal:")]
    if orthogonal and chance(draw, 30):
        world.quotes = draw(st.dictionaries(
            st.sampled_from(orthogonal),
            st.decimals(min_value=0, max_value=Decimal("0.5"), places=6),
            max_size=3,
        ))
    if chance(draw, 15):
        world.policy = Policy(
            allowed_models=draw(st.frozensets(st.sampled_from(model_ids), min_size=1, max_size=8)),
            denied_front_ends=draw(st.frozensets(st.sampled_from(FRONT_ENDS), max_size=2)),
        )
    return world


# ---- request bodies -----------------------------------------------------------------------------

_EXTRA_PARAMS: dict[str, Any] = {
    "temperature": 0.3,
    "top_k": 40,
    "seed": 7,
    "logprobs": True,
    "metadata": {"team": "search"},  # no marketplace takes it: require_parameters cares
}
_FRONT_END_LISTS = st.lists(st.sampled_from(FRONT_ENDS), unique=True, max_size=3)
_MAX_COST = st.one_of(
    st.sampled_from(["0.0001", "0.0005", "0.001", "0.003", "0.01", "0.02", "0.05", 0.01, 0.004]),
    st.decimals(min_value=Decimal("0.00001"), max_value=Decimal(2), places=5).map(lambda d: f"{d:f}"),
    st.floats(min_value=1e-5, max_value=2.0),
)
_PROVIDER = st.fixed_dictionaries(
    {},
    optional={
        "order": _FRONT_END_LISTS,
        "only": st.lists(st.sampled_from(FRONT_ENDS), unique=True, min_size=1, max_size=3),
        "ignore": _FRONT_END_LISTS,
        "allow_fallbacks": st.booleans(),
        "require_parameters": st.booleans(),
        "sort": st.sampled_from(SORTS),
        "max_cost_usd": _MAX_COST,
    },
)
_PROMPT_CHARS = st.one_of(
    st.integers(10, 4_000), st.integers(4_000, 400_000), st.integers(400_000, 1_500_000)
)


@st.composite
def bodies(draw: st.DrawFn, catalog: Catalog) -> dict[str, Any]:
    """A valid chat-completions body, except that max_tokens may exceed what the validator admits.

    Half the bodies are shaped to fit one target model (its context, output limit, features), so
    that plans with candidates are common; the rest ask for anything at all."""
    model_ids = sorted(catalog.models)
    target = catalog.models[draw(st.sampled_from(model_ids))]
    fit = chance(draw, 70)
    pools = sorted(p for p, ids in catalog.pools.items() if target.id in ids or not fit)
    model = draw(st.sampled_from(["auto", target.id, *pools]))
    f = target.features
    images = draw(st.integers(1, 3)) if chance(draw, 10 if fit and not f.vision else 30) else 0
    if fit and not f.vision:
        images = 0
    audio = 1 if not fit and chance(draw, 10) else 0
    # Fitting prompts stay under the target's context even with the largest calibration ratio.
    chars = draw(st.integers(10, max(10, min(1_500_000, target.context_length))) if fit else _PROMPT_CHARS)
    messages = []
    if chance(draw, 50):
        messages.append({"role": "system", "content": "Be brief."})
    messages.append(user_message(chars, images, audio))
    body: dict[str, Any] = {"model": model, "messages": messages}
    if chance(draw, 30) and (not fit or (f.tools and f.tool_calling_recommended)):
        body["tools"] = [TOOL]
    kinds = ["text"] + (["json_object"] if f.json_mode or not fit else []) + (
        ["json_schema"] if f.structured_outputs or not fit else [])
    response_format = draw(st.none() | st.sampled_from(kinds))
    if response_format == "json_schema":
        body["response_format"] = JSON_SCHEMA_FORMAT
    elif response_format is not None:
        body["response_format"] = {"type": response_format}
    efforts = f.reasoning_efforts if fit else REASONING_EFFORTS
    if efforts and chance(draw, 20):
        body["reasoning_effort"] = draw(st.sampled_from(efforts))
    stops = draw(st.integers(1, 4) | st.integers(5, 32)) if chance(draw, 40) else 0
    if stops == 1 and chance(draw, 50):
        body["stop"] = "END"
    elif stops:
        body["stop"] = [f"<stop{i}>" for i in range(stops)]
    top = min(target.max_output_tokens, 8_192) if fit else 300_000
    max_output = draw(st.integers(1, top)) if chance(draw, 50) else None
    if max_output is not None:
        body[draw(st.sampled_from(["max_tokens", "max_completion_tokens"]))] = max_output
    if chance(draw, 50):
        body["stream"] = True
        if chance(draw, 50):
            body["stream_options"] = {"include_usage": True}
    for name in draw(st.sets(st.sampled_from(sorted(_EXTRA_PARAMS)), max_size=3)) if chance(draw, 40) else ():
        body[name] = _EXTRA_PARAMS[name]
    if chance(draw, 50):
        body["provider"] = draw(_PROVIDER)
    if chance(draw, 20):
        body["models"] = draw(st.lists(st.sampled_from(model_ids), min_size=1, max_size=3))
    return body
