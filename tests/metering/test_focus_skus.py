"""The FOCUS SKU lines of a group of ledger rows: exact split of the billed amount, exact list costs."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.catalog.model import Pricing
from service.metering.focus_skus import (
    CACHED_INPUT,
    INPUT,
    OUTPUT,
    REQUEST,
    GroupSums,
    allocate,
    lines_for,
)

Q = Decimal("1E-10")
ledger_money = st.integers(min_value=0, max_value=10**16).map(lambda n: Decimal(n).scaleb(-10))
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
weights = st.lists(st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False, allow_infinity=False),
                   min_size=1, max_size=4).filter(lambda ws: any(w > 0 for w in ws))


@given(total=ledger_money, ws=weights)
@settings(max_examples=300)
def test_allocate_is_exact_non_negative_and_proportional(total, ws):
    shares = allocate(total, ws)
    assert sum(shares) == total
    assert all(s >= 0 and s == s.quantize(Q) for s in shares)
    whole = sum(Fraction(w) for w in ws)
    largest = ws.index(max(ws))
    for i, (share, w) in enumerate(zip(shares, ws, strict=True)):
        exact = Fraction(total) * Fraction(w) / whole
        if i == largest:
            assert Fraction(share) >= exact  # it takes what the others' rounding down left
        else:
            assert exact - Fraction(Q) < Fraction(share) <= exact


def test_allocate_refuses_amounts_finer_than_the_ledger_and_no_weight():
    with pytest.raises(ValueError, match="is not a multiple of"):
        allocate(Decimal("0.00000000001"), [Decimal(1)])
    with pytest.raises(ValueError, match="not all zero"):
        allocate(Decimal(1), [Decimal(0), Decimal(0)])


def _sums(calls=1, charged=1, inp=0, cached=0, out=0, provider="0", billed="0") -> GroupSums:
    return GroupSums(calls, charged, inp, cached, out, Decimal(provider), Decimal(billed))


PER_TOKEN = Pricing("per_token", Decimal("0.60"), Decimal("2.20"), Decimal("0.06"))


def test_per_token_lines_split_the_billed_amount_by_list_cost():
    # 6000 input at 0.60, 4000 cached at 0.06, 2000 output at 2.20 per million; markup 25 %.
    provider = Decimal("0.0036") + Decimal("0.00024") + Decimal("0.0044")
    lines = lines_for("baseten", "zai-org/GLM-4.6", PER_TOKEN,
                      _sums(inp=6000, cached=4000, out=2000, provider=str(provider), billed=str(provider * 125 / 100)))
    assert [ln.kind for ln in lines] == [INPUT, CACHED_INPUT, OUTPUT]
    assert [ln.sku_price_id for ln in lines] == [
        "baseten/zai-org/GLM-4.6/input@0.6", "baseten/zai-org/GLM-4.6/cached_input@0.06",
        "baseten/zai-org/GLM-4.6/output@2.2"]
    assert [ln.consumed_quantity for ln in lines] == [6000, 4000, 2000]
    assert [ln.pricing_quantity for ln in lines] == [Decimal("0.006"), Decimal("0.004"), Decimal("0.002")]
    assert [ln.list_cost for ln in lines] == [Decimal("0.0036"), Decimal("0.00024"), Decimal("0.0044")]
    assert [ln.billed_usd for ln in lines] == [Decimal("0.0045"), Decimal("0.0003"), Decimal("0.0055")]
    assert all(ln.list_unit_price * ln.pricing_quantity == ln.list_cost for ln in lines)


def test_cached_tokens_without_a_cached_price_are_priced_as_input_and_empty_kinds_are_left_out():
    pricing = Pricing("per_token", Decimal("0.10"), Decimal("0.50"))
    lines = lines_for("baseten", "m", pricing, _sums(inp=1000, cached=500, out=0, billed="0.0001500000"))
    assert [(ln.kind, ln.list_unit_price, ln.billed_usd) for ln in lines] == [
        (INPUT, Decimal("0.10"), Decimal("0.0001")), (CACHED_INPUT, Decimal("0.10"), Decimal("0.00005"))]


def test_a_per_call_fee_on_a_per_token_route_is_its_own_sku():
    pricing = Pricing("per_token", Decimal(1), Decimal(1), per_call=Decimal("0.001"))
    lines = lines_for("baseten", "m", pricing, _sums(calls=3, inp=1000, out=1000, billed="0.005"))
    request = lines[-1]
    assert (request.kind, request.pricing_unit, request.pricing_quantity, request.list_cost) == (
        REQUEST, "Requests", 3, Decimal("0.003"))
    assert sum(ln.billed_usd for ln in lines) == Decimal("0.005")


def test_flat_fee_calls_are_priced_per_charged_call():
    [line] = lines_for("xpay", "m", Pricing("flat", per_call=Decimal("0.01")),
                       _sums(calls=5, charged=3, inp=900, out=90, provider="0.03", billed="0.036"))
    assert (line.kind, line.consumed_unit, line.consumed_quantity) == (REQUEST, "Requests", 5)
    assert (line.pricing_unit, line.pricing_quantity, line.list_unit_price) == ("Requests", 3, Decimal("0.01"))
    assert (line.list_cost, line.billed_usd, line.pricing_category) == (Decimal("0.03"), Decimal("0.036"), "Standard")
    assert line.sku_price_id == "xpay/m/request@0.01"


@pytest.mark.parametrize("pricing", [Pricing("quoted"), None, Pricing("unknown")])
def test_quoted_and_unpriced_calls_are_priced_per_dollar_as_charged(pricing):
    [line] = lines_for("orthogonal", "m", pricing, _sums(calls=2, charged=2, provider="0.0042", billed="0.00525"))
    assert (line.pricing_unit, line.pricing_quantity, line.list_unit_price) == ("Dollars", Decimal("0.0042"), 1)
    assert (line.list_cost, line.billed_usd, line.pricing_category) == (Decimal("0.0042"), Decimal("0.00525"),
                                                                        "Dynamic")
    assert (line.consumed_unit, line.consumed_quantity) == ("Requests", 2)
    assert line.sku_price_id == "orthogonal/m/request@as-charged"


def test_a_charged_per_token_group_that_prices_to_nothing_keeps_its_billed_amount():
    [line] = lines_for("baseten", "m", PER_TOKEN, _sums(provider="0.002", billed="0.0025"))
    assert (line.kind, line.billed_usd, line.pricing_unit) == (REQUEST, Decimal("0.0025"), "Dollars")


def test_a_group_with_no_usage_and_no_charge_writes_nothing():
    assert lines_for("baseten", "m", PER_TOKEN, _sums(calls=1, charged=0)) == []


@given(inp=st.integers(0, 10**9), cached=st.integers(0, 10**9), out=st.integers(0, 10**9), billed=ledger_money,
       p_in=prices, p_cached=prices, p_out=prices)
@settings(max_examples=300)
def test_token_lines_always_sum_to_the_billed_amount_and_price_out_exactly(inp, cached, out, billed, p_in,
                                                                           p_cached, p_out):
    pricing = Pricing("per_token", p_in, p_out, p_cached)
    lines = lines_for("baseten", "m", pricing, _sums(inp=inp, cached=cached, out=out, billed=str(billed)))
    assert sum((ln.billed_usd for ln in lines), Decimal(0)) == billed
    assert all(ln.billed_usd >= 0 for ln in lines)
    for ln in lines:
        assert ln.list_unit_price * ln.pricing_quantity == ln.list_cost
        if ln.pricing_unit == "1000000 Tokens":
            assert ln.pricing_quantity * 1_000_000 == ln.consumed_quantity
    merged = lines[0].merged(lines[0]) if lines else None
    if merged is not None:
        assert merged.list_cost == merged.list_unit_price * merged.pricing_quantity == 2 * lines[0].list_cost


def test_a_price_written_two_ways_is_one_sku_price():
    sums = _sums(inp=1000, out=1000, billed="0.0001")
    a = lines_for("baseten", "m", Pricing("per_token", Decimal("0.50"), Decimal(100)), sums)
    b = lines_for("baseten", "m", Pricing("per_token", Decimal("0.5"), Decimal("1E+2")), sums)
    assert [ln.sku_price_id for ln in a] == [ln.sku_price_id for ln in b] == [
        "baseten/m/input@0.5", "baseten/m/output@100"]
