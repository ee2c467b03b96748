"""Checks for the routing extensions: the `provider` preferences object and the `models` fallback list.

Both are named as OpenRouter's users know them. `provider.max_cost_usd` is money, so it is parsed
to an exact Decimal from the number's shortest repr (or from a decimal string), never kept as a float.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from service.catalog.model import FRONT_ENDS
from service.chat.validate_types import (
    bad_value,
    check_keys,
    choices,
    empty_array,
    empty_string,
    not_one_of,
    show,
    too_many,
    wrong_type,
)

MAX_MODELS = 10
SORTS = ("price", "latency", "throughput")

_PROVIDER_KEYS = frozenset(
    {"order", "only", "ignore", "allow_fallbacks", "require_parameters", "sort", "max_cost_usd"}
)
_DECIMAL_STRING = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,30})?")


@dataclass(frozen=True, slots=True)
class ProviderPrefs:
    """The client's routing preferences. Empty `only` means every front end may serve."""

    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    require_parameters: bool = False
    sort: str | None = None
    max_cost_usd: Decimal | None = None


DEFAULT_PROVIDER_PREFS = ProviderPrefs()


def check_provider(value: object) -> ProviderPrefs:
    if not isinstance(value, dict):
        raise wrong_type("provider", "an object", value)
    check_keys(value, _PROVIDER_KEYS, "provider")
    order = _front_ends(value.get("order"), "provider.order")
    only = _front_ends(value.get("only"), "provider.only")
    if value.get("only") is not None and not only:
        # An empty allow-list would read as "no restriction"; refuse it rather than guess.
        raise empty_array("provider.only")
    ignore = _front_ends(value.get("ignore"), "provider.ignore")
    allow_fallbacks = _flag(value.get("allow_fallbacks"), "provider.allow_fallbacks", True)
    require_parameters = _flag(value.get("require_parameters"), "provider.require_parameters", False)
    sort = value.get("sort")
    if sort is not None and sort not in SORTS:
        if type(sort) is not str:
            raise wrong_type("provider.sort", "a string", sort)
        raise not_one_of("provider.sort", sort, SORTS)
    max_cost = value.get("max_cost_usd")
    return ProviderPrefs(
        order=order,
        only=only,
        ignore=ignore,
        allow_fallbacks=allow_fallbacks,
        require_parameters=require_parameters,
        sort=sort,
        max_cost_usd=None if max_cost is None else parse_max_cost(max_cost),
    )


def _front_ends(value: object, param: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise wrong_type(param, "an array of front-end names", value)
    # Each name may appear once, so a bad list fails within its first few items whatever its length.
    for index, name in enumerate(value):
        if name not in FRONT_ENDS:
            if type(name) is not str:
                raise wrong_type(f"{param}[{index}]", "a string", name)
            raise bad_value(
                f"{param}[{index}]",
                f"unknown front end {show(name)}. Supported values are: {choices(FRONT_ENDS)}.",
            )
        if name in value[:index]:
            raise bad_value(f"{param}[{index}]", f"front end {show(name)} is listed twice.")
    return tuple(value)


def _flag(value: object, param: str, default: bool) -> bool:
    if value is None:
        return default
    if type(value) is not bool:
        raise wrong_type(param, "a boolean", value)
    return value


def parse_max_cost(value: object) -> Decimal:
    """A positive USD amount from a JSON number or a plain decimal string, exactly."""
    param = "provider.max_cost_usd"
    if type(value) is int:
        amount = Decimal(value)
    elif type(value) is float:
        if not math.isfinite(value):
            raise bad_value(param, f"expected a finite number, but got {show(value)} instead.")
        # repr is the shortest string that round-trips: 0.1 stays 0.1, not 0.1000000000000000055...
        amount = Decimal(repr(value))
    elif type(value) is str:
        if _DECIMAL_STRING.fullmatch(value) is None:
            expected = "a decimal amount such as '0.05'"
            raise bad_value(param, f"expected {expected}, but got {show(value)} instead.")
        amount = Decimal(value)
    else:
        raise wrong_type(param, "a number or a decimal string", value)
    if amount <= 0:
        raise bad_value(param, f"expected a value > 0, but got {show(value)} instead.")
    return amount


def check_models(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise wrong_type("models", "an array", value)
    if not value:
        raise empty_array("models")
    if len(value) > MAX_MODELS:
        raise too_many("models", MAX_MODELS, len(value))
    for index, slug in enumerate(value):
        if type(slug) is not str:
            raise wrong_type(f"models[{index}]", "a string", slug)
        if not slug:
            raise empty_string(f"models[{index}]")
    return tuple(value)
