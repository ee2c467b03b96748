"""The cost of record: what one attempt cost the operator, and what the tenant is billed for it.

Decided here and nowhere else, from the evidence an adapter returned and the catalog's price terms.
Every figure a tenant sees (`usage.cost`, `x-switchyard-cost-usd`, `/v1/usage`, exports, budgets)
is a billed amount from this module; provider cost and margin are the operator's.

The rounding rule, stated once: the provider cost of an attempt and its billed amount are each
rounded half-up to 10 decimal places (the ledger's NUMERIC(20,10)), and
billed = round(provider x (1 + markup)). A request's cost is the sum of its attempts' rows, and
every total (usage API, rollup, exports) is a sum of rows, so nothing is rounded twice.

Where the provider cost comes from, in order (the row's `cost_source`):
  receipt   a charge the marketplace stated for this call (xpay's `Cost: $0.01` receipt);
  envelope  a price field of the marketplace's answer in dollars (Orthogonal's `price`), or its
            `priceCents` once that field's unit is known (configured, or learned from an answer
            carrying both fields; never guessed by comparing it with an estimate);
  quote     the price the marketplace quoted for this very call before it was made (dry run);
  computed  reported tokens x the catalog's per-token prices, or the catalog's flat fee;
  estimated anything else: tokens estimated because the upstream reported none, or a quoted
            route priced from its estimate terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from service.catalog.model import Pricing, Route
from service.upstreams.base import Evidence, Usage

MONEY_QUANTUM = Decimal("1E-10")
ZERO = Decimal(0)
# The two readings of Orthogonal's priceCents its docs give: cents, or 1/100,000 USD.
CENTS_UNITS = (Decimal(100), Decimal(100_000))


class CostSource(StrEnum):
    RECEIPT = "receipt"
    ENVELOPE = "envelope"
    QUOTE = "quote"
    COMPUTED = "computed"
    ESTIMATED = "estimated"


def money(amount: Decimal) -> Decimal:
    """An amount as the ledger stores it."""
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)


def billed_amount(provider_usd: Decimal, markup: Decimal) -> Decimal:
    return money(provider_usd * (1 + markup))


@dataclass(frozen=True, slots=True)
class CostOfRecord:
    provider_usd: Decimal
    billed_usd: Decimal
    source: CostSource
    usage: Usage  # the tokens the row records
    estimated: bool  # the tokens are an estimate: the upstream reported none
    # What the same tokens would have cost on Baseten direct for the same model (provider cost, and
    # billed at the tenant's markup): the baseline for savings. None when there is no direct price.
    direct_provider_usd: Decimal | None = None
    direct_billed_usd: Decimal | None = None
    # The token-price figure beside a marketplace's own charge: the drift metric compares them.
    reference_usd: Decimal | None = None


class CentsUnit:
    """What Orthogonal's `priceCents` is worth: set by the operator, or learned from an answer
    that carried both `price` (dollars) and `priceCents` in a ratio that only one unit explains."""

    def __init__(self, configured: Decimal | None = None) -> None:
        self.unit = configured
        self._configured = configured is not None

    def learn(self, dollars: Decimal, cents: Decimal) -> None:
        if self._configured or dollars <= 0 or cents < 10:
            return  # a small priceCents fits both units within rounding: it proves nothing
        for unit in CENTS_UNITS:
            if abs(cents - dollars * unit) <= 1:
                self.unit = unit


class PriceBook:
    """Decides costs of record; one per process (it holds what was learned of priceCents)."""

    def __init__(self, cents_unit: CentsUnit | None = None) -> None:
        self.cents_unit = cents_unit or CentsUnit()

    def cost_of_record(self, route: Route, evidence: Evidence, *, markup: Decimal, answered: bool,
                       estimate: Usage, direct: Route | None = None, quote: Decimal | None = None) -> CostOfRecord:
        """`answered`: the attempt delivered an answer; `estimate`: the tokens to record when an
        answered call reported none (the gateway's estimate of its prompt and answer)."""
        usage = evidence.usage
        estimated = False
        if usage is None:
            if answered:
                usage, estimated = estimate, True
            else:
                usage = Usage()
        provider, source = self._provider_cost(route, evidence, usage, answered, estimated, quote)
        provider = money(provider)
        reference = None
        if source in (CostSource.RECEIPT, CostSource.ENVELOPE) and not estimated:
            reference = _reference(route, usage)
        direct_cost = None
        if direct is not None and direct.pricing.kind == "per_token" and answered:
            direct_cost = direct.pricing.token_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        direct_cost = money(direct_cost) if direct_cost is not None else None
        return CostOfRecord(provider, billed_amount(provider, markup), source, usage, estimated, direct_cost,
                            billed_amount(direct_cost, markup) if direct_cost is not None else None, reference)

    def _provider_cost(self, route: Route, evidence: Evidence, usage: Usage, answered: bool, estimated: bool,
                       quote: Decimal | None) -> tuple[Decimal, CostSource]:
        if evidence.receipt_usd is not None:
            return evidence.receipt_usd, CostSource.RECEIPT
        if evidence.envelope_usd is not None:
            if evidence.envelope_cents is not None:
                self.cents_unit.learn(evidence.envelope_usd, evidence.envelope_cents)
            return evidence.envelope_usd, CostSource.ENVELOPE
        if evidence.envelope_cents is not None and self.cents_unit.unit is not None:
            return evidence.envelope_cents / self.cents_unit.unit, CostSource.ENVELOPE
        pricing = route.pricing
        if pricing.kind == "flat":
            # A flat-fee marketplace that stated no charge: its published fee for an answer, and
            # nothing for a failure (neither documents charging one without a receipt).
            fee = pricing.per_call if answered and pricing.per_call is not None else ZERO
            return fee, CostSource.COMPUTED
        if pricing.kind == "per_token":
            cost = _tokens(pricing, usage)
            return cost, CostSource.ESTIMATED if estimated else CostSource.COMPUTED
        if pricing.kind == "quoted":
            if not answered:
                return ZERO, CostSource.COMPUTED
            if quote is not None:
                return quote, CostSource.QUOTE
            if route.estimate is not None:
                return _tokens(route.estimate, usage), CostSource.ESTIMATED
        return ZERO, CostSource.ESTIMATED if answered else CostSource.COMPUTED

    def quote_price(self, quoted: Evidence) -> Decimal | None:
        """A dry run's price, when its fields can be read without guessing their unit."""
        if quoted.envelope_usd is not None:
            if quoted.envelope_cents is not None:
                self.cents_unit.learn(quoted.envelope_usd, quoted.envelope_cents)
            return quoted.envelope_usd
        if quoted.envelope_cents is not None and self.cents_unit.unit is not None:
            return quoted.envelope_cents / self.cents_unit.unit
        return None

    def worst_billed(self, provider_worst: Decimal, markup: Decimal) -> Decimal:
        """A reservation covering `provider_worst` once billed; never below the billed amount of
        any provider cost up to it (rounding is monotonic)."""
        return billed_amount(provider_worst, markup)


def _tokens(pricing: Pricing, usage: Usage) -> Decimal:
    cost = pricing.token_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
    return cost if cost is not None else ZERO


def _reference(route: Route, usage: Usage) -> Decimal | None:
    if route.pricing.kind == "flat":
        return route.pricing.per_call
    if route.estimate is not None:
        return route.estimate.token_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
    return None
