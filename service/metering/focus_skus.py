"""What a FOCUS row charges for: the SKUs of a route, their list prices, and the billed split.

A per-token route has three SKUs, one per token kind (input, cached input, output), priced per
million tokens at the catalog's published price (plus a per-call SKU when the route also charges
a fee per call). A flat-fee or quoted route has one per-call SKU. The billed amount of a group of
ledger rows is split across its SKUs in proportion to their list cost, exactly: every share is a
multiple of the ledger's 1E-10, the shares sum to the group's billed amount, and the remainder of
the split goes to the largest share (so no share is ever negative).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext
from pathlib import Path
from typing import Any

from service.catalog.loader import CatalogError, load_catalog, merge_overrides, parse_catalog
from service.catalog.model import MILLION, Catalog, Pricing
from service.catalog.sync import latest_version
from service.db.pool import Conn

LEDGER_QUANTUM = Decimal("1E-10")
ONE = Decimal(1)
# Money arithmetic that would have to round raises instead: list costs and sums are exact.
EXACT = Context(prec=80, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
ZERO = Decimal(0)

# Token kinds in the order their rows are written; "request" is the per-call SKU.
INPUT, CACHED_INPUT, OUTPUT, REQUEST = "input", "cached_input", "output", "request"
KINDS = (INPUT, CACHED_INPUT, OUTPUT, REQUEST)
METERS = {INPUT: "Input Tokens", CACHED_INPUT: "Cached Input Tokens", OUTPUT: "Output Tokens", REQUEST: "Requests"}
TOKENS, PER_MILLION_TOKENS, REQUESTS, DOLLARS = "Tokens", "1000000 Tokens", "Requests", "Dollars"
STANDARD, DYNAMIC = "Standard", "Dynamic"
# The price id suffix of a call priced at whatever it was charged (a quote, a receipt).
AS_CHARGED = "as-charged"


@dataclass(frozen=True, slots=True)
class GroupSums:
    """Sums of the ledger rows of one route, price version and charge period."""

    calls: int
    charged_calls: int  # calls the upstream charged for (provider cost above zero)
    input_tokens: int  # prompt tokens not served from cache
    cached_tokens: int
    output_tokens: int
    provider_usd: Decimal
    billed_usd: Decimal


@dataclass(frozen=True, slots=True)
class Line:
    """One SKU's share of a group: what becomes (part of) one FOCUS row."""

    kind: str
    sku_price_id: str
    pricing_category: str
    consumed_unit: str
    consumed_quantity: Decimal
    pricing_unit: str
    pricing_quantity: Decimal
    list_unit_price: Decimal
    list_cost: Decimal
    billed_usd: Decimal

    def merged(self, other: Line) -> Line:
        """The sum of two lines of the same SKU price; the list cost stays price x quantity."""
        with localcontext(EXACT):
            return self._merged(other)

    def _merged(self, other: Line) -> Line:
        pricing_quantity = self.pricing_quantity + other.pricing_quantity
        return Line(self.kind, self.sku_price_id, self.pricing_category, self.consumed_unit,
                    self.consumed_quantity + other.consumed_quantity, self.pricing_unit, pricing_quantity,
                    self.list_unit_price, self.list_unit_price * pricing_quantity, self.billed_usd + other.billed_usd)


def sku_id(front_end: str, model: str, kind: str) -> str:
    return f"{front_end}/{model}/{kind}"


def price_id(front_end: str, model: str, kind: str, price: Decimal) -> str:
    """The SKU and its list price, written canonically (0.50 and 0.5 are one price): the id stays
    the same across catalog versions while the price does, and changes when the price does."""
    return f"{sku_id(front_end, model, kind)}@{format(price.normalize(), 'f')}"


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split `total` (a multiple of 1E-10) in proportion to `weights` (exact, not all zero).

    Integer arithmetic throughout: each share but the largest is rounded down to 1E-10 and the
    largest takes the rest, so the shares sum to `total` exactly.
    """
    units = total.scaleb(10)
    if units != units.to_integral_value():
        raise ValueError(f"{total} is not a multiple of {LEDGER_QUANTUM}")
    scale = max((_places(w) for w in weights), default=0)
    ints = [int(w.scaleb(scale)) for w in weights]
    whole = sum(ints)
    if whole <= 0 or min(ints) < 0:
        raise ValueError("weights must be non-negative and not all zero")
    largest = ints.index(max(ints))
    shares = [int(units) * w // whole for w in ints]
    shares[largest] = int(units) - (sum(shares) - shares[largest])
    return [Decimal(s).scaleb(-10) for s in shares]


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise TypeError(f"not a finite decimal: {value}")
    return max(-exponent, 0)


def lines_for(front_end: str, model: str, pricing: Pricing | None, sums: GroupSums) -> list[Line]:
    """The SKU lines of one group; lines with no usage and no charge are left out."""
    with localcontext(EXACT):
        lines = _token_lines(front_end, model, pricing, sums) if _priced_per_token(pricing) else None
        if lines is None:
            lines = [_call_line(front_end, model, pricing, sums)]
    return [line for line in lines if line.consumed_quantity or line.billed_usd or line.list_cost]


def _priced_per_token(pricing: Pricing | None) -> bool:
    return (pricing is not None and pricing.kind == "per_token" and pricing.input_per_mtok is not None
            and pricing.output_per_mtok is not None)


def _token_lines(front_end: str, model: str, p: Pricing | None, sums: GroupSums) -> list[Line] | None:
    if p is None or p.input_per_mtok is None or p.output_per_mtok is None:
        raise ValueError(f"{front_end} {model} has no per-token prices")  # callers check _per_token first
    cached_price = p.cached_input_per_mtok if p.cached_input_per_mtok is not None else p.input_per_mtok
    parts: list[tuple[str, int, Decimal]] = [
        (INPUT, sums.input_tokens, p.input_per_mtok),
        (CACHED_INPUT, sums.cached_tokens, cached_price),
        (OUTPUT, sums.output_tokens, p.output_per_mtok),
    ]
    list_costs = [Decimal(tokens) * price / MILLION for _, tokens, price in parts]
    if p.per_call:
        list_costs.append(sums.calls * p.per_call)
    if not any(list_costs):
        if sums.billed_usd:
            return None  # charged, yet nothing priced: bill it per call, as charged
        billed = [ZERO] * len(list_costs)
    else:
        billed = allocate(sums.billed_usd, list_costs)
    lines = [
        Line(kind, price_id(front_end, model, kind, price), STANDARD, TOKENS, Decimal(tokens),
             PER_MILLION_TOKENS, Decimal(tokens) / MILLION, price, cost, share)
        for (kind, tokens, price), cost, share in zip(parts, list_costs, billed, strict=False)
    ]
    if p.per_call:
        lines.append(Line(REQUEST, price_id(front_end, model, REQUEST, p.per_call), STANDARD, REQUESTS,
                          Decimal(sums.calls), REQUESTS, Decimal(sums.calls), p.per_call, list_costs[-1],
                          billed[-1]))
    return lines


def _call_line(front_end: str, model: str, p: Pricing | None, sums: GroupSums) -> Line:
    sku = sku_id(front_end, model, REQUEST)
    if p is not None and p.kind == "flat" and p.per_call is not None:
        charged = Decimal(sums.charged_calls)
        return Line(REQUEST, price_id(front_end, model, REQUEST, p.per_call), STANDARD, REQUESTS, Decimal(sums.calls),
                    REQUESTS, charged, p.per_call, p.per_call * charged, sums.billed_usd)
    # A quoted (or unpriced) call has no unit price per call: each is priced as its upstream
    # charged it, so the pricing unit is a dollar of that charge at a list price of 1.
    return Line(REQUEST, f"{sku}@{AS_CHARGED}", DYNAMIC, REQUESTS, Decimal(sums.calls), DOLLARS,
                sums.provider_usd, ONE, sums.provider_usd, sums.billed_usd)


class PriceLookup:
    """The price terms a ledger row was billed at, by its price version.

    In order: the running catalog when its version is the row's; the version recorded in
    `price_versions` (with the operator's override file applied, as the running service applies
    it); else the running catalog, for versions never recorded (a bundled catalog file's).
    """

    def __init__(self, current: Catalog, overrides: dict[str, Any] | None = None) -> None:
        self.current = current
        self.overrides = overrides
        self._catalogs: dict[str, Catalog] = {current.version: current}

    @classmethod
    def running(cls, current: Catalog, overrides_path: Path | None) -> PriceLookup:
        overrides = json.loads(overrides_path.read_text("utf-8")) if overrides_path is not None else None
        return cls(current, overrides)

    @classmethod
    async def like_the_service(cls, conn: Conn, catalog_path: Path | None,
                               overrides_path: Path | None) -> PriceLookup:
        """The lookup a process without a runtime (the CLI) builds: the catalog the service runs
        with is the configured file, else the newest recorded price version, else the bundled
        file, each with the override file applied (as Runtime does at start)."""
        current = load_catalog(catalog_path, overrides_path)
        lookup = cls.running(current, overrides_path)
        if catalog_path is None:
            raw = await latest_version(conn)
            if raw is not None:
                lookup.current = parse_catalog(merge_overrides(raw, lookup.overrides) if lookup.overrides else raw)
                lookup._catalogs = {lookup.current.version: lookup.current}
        return lookup

    def known(self, version: str) -> bool:
        return version in self._catalogs

    def add_recorded(self, version: str, raw: str | dict[str, Any] | None) -> None:
        """The catalog stored for `version` (None when none is); unreadable ones fall back."""
        catalog = self.current
        if raw is not None:
            data = json.loads(raw) if isinstance(raw, str) else raw
            if self.overrides is not None:
                data = merge_overrides(data, self.overrides)
            try:
                catalog = parse_catalog(data)
            except (CatalogError, KeyError, TypeError, ValueError):
                catalog = self.current
        self._catalogs[version] = catalog

    def pricing(self, version: str, front_end: str, model: str) -> Pricing | None:
        route = self._catalogs.get(version, self.current).find_route(front_end, model)
        return route.pricing if route is not None else None
