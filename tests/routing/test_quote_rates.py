"""The per-token terms a quoted route's charges follow, learned from its calls, and the planner
pricing a route with no catalog estimate by them instead of by a quote made for the whole
max_tokens."""

from __future__ import annotations

import math
import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from service.routing.quotes import MIN_RATE_CALLS, QuoteAccuracy

from .test_planner_capacity import K2_THINKING, gateway
from .test_planner_examples import LONG_PROMPT, SHORT_PROMPT, body, names

ROUTE = f"orthogonal:{K2_THINKING}"
MILLION = Decimal(1_000_000)


def charge(rate_in: Decimal, rate_out: Decimal, prompt: int, completion: int) -> Decimal:
    """What a marketplace reselling at these rates charges, to the micro-dollar."""
    return ((rate_in * prompt + rate_out * completion) / MILLION).quantize(Decimal("0.000001"))


def teach(accuracy: QuoteAccuracy, rate_in: Decimal, rate_out: Decimal, calls: int, seed: int = 7) -> None:
    """Calls of every size, each quoted for its prompt and whole max_tokens and charged for the
    answer it got."""
    rng = random.Random(seed)
    for _ in range(calls):
        prompt = int(math.exp(rng.uniform(math.log(300), math.log(120_000))))
        max_tokens = rng.choice((1_024, 4_096, 16_000))
        completion = min(max_tokens, int(rng.lognormvariate(math.log(900), 0.9)) + 1)
        accuracy.observe(ROUTE, charge(rate_in, rate_out, prompt, max_tokens),
                         charge(rate_in, rate_out, prompt, completion), prompt_tokens=prompt,
                         completion_tokens=completion)


@settings(max_examples=30, deadline=None)
@given(st.decimals(Decimal("0.05"), Decimal(5), places=2), st.decimals(Decimal("0.1"), Decimal(12), places=2),
       st.integers(0, 10_000))
def test_the_terms_are_learned_from_charges_and_usage(rate_in, rate_out, seed):
    accuracy = QuoteAccuracy()
    teach(accuracy, rate_in, rate_out, MIN_RATE_CALLS - 1, seed)
    assert accuracy.rates(ROUTE) is None  # too few calls to tell the two prices apart
    teach(accuracy, rate_in, rate_out, 120, seed + 1)
    learned = accuracy.rates(ROUTE)
    assert learned is not None
    # Charges are rounded to the micro-dollar: a short call's few tokens move the fit a little.
    assert math.isclose(learned[0], float(rate_in), rel_tol=0.03, abs_tol=0.01)
    assert math.isclose(learned[1], float(rate_out), rel_tol=0.03, abs_tol=0.01)
    snapshot = accuracy.snapshot()[ROUTE]
    assert (snapshot["input_per_mtok"], snapshot["output_per_mtok"]) == learned


def test_calls_that_cannot_tell_the_prices_apart_teach_none():
    accuracy = QuoteAccuracy()
    for _ in range(50):  # always the same mix of prompt and answer
        accuracy.observe(ROUTE, Decimal("0.01"), Decimal("0.004"), prompt_tokens=2_000, completion_tokens=500)
    assert accuracy.rates(ROUTE) is None and accuracy.learned_cost(ROUTE, 1_000, 100) is None
    for _ in range(50):  # calls without usage teach the quote's accuracy only
        accuracy.observe(f"{ROUTE}-other", Decimal("0.01"), Decimal("0.004"))
    assert accuracy.rates(f"{ROUTE}-other") is None


def test_a_route_without_an_estimate_is_priced_by_its_learned_terms_at_the_expected_answer():
    accuracy = QuoteAccuracy()
    teach(accuracy, Decimal("0.60"), Decimal("2.50"), 200)
    gw = gateway(accuracy)
    # A short prompt with a large max_tokens: the quote prices all 16,000 tokens (about 0.04 USD),
    # the answer expected costs a fraction of the flat fee.
    short = body(K2_THINKING, chars=SHORT_PROMPT, max_tokens=16_000)
    quote = charge(Decimal("0.60"), Decimal("2.50"), 600, 16_000)
    plan = gw.plan(short, quotes={ROUTE: quote})
    quoted = next(c for c in plan.candidates if c.route.name == ROUTE)
    learned = accuracy.learned_cost(ROUTE, quoted.prompt_tokens, quoted.expected_output)
    assert learned is not None and learned < 0.01 < float(quote)
    view = accuracy.view(ROUTE, quote)
    assert view.trust < 0.5  # quotes for the whole max_tokens have proved far from the charges
    assert math.isclose(quoted.expected_f, view.trust * view.corrected + (1 - view.trust) * learned)
    assert names(plan)[0] == ROUTE
    # A long prompt: the prompt alone costs more than the flat fee.
    long = body(K2_THINKING, chars=LONG_PROMPT, max_tokens=1_024)
    plan = gw.plan(long, quotes={ROUTE: charge(Decimal("0.60"), Decimal("2.50"), 40_000, 1_024)})
    assert names(plan)[0] == f"xpay:{K2_THINKING}"


def test_before_the_terms_are_known_the_corrected_quote_ranks_as_before():
    accuracy = QuoteAccuracy()
    teach(accuracy, Decimal("0.60"), Decimal("2.50"), MIN_RATE_CALLS - 1)
    quote = Decimal("0.004")
    plan = gateway(accuracy).plan(body(K2_THINKING, chars=SHORT_PROMPT), quotes={ROUTE: quote})
    quoted = next(c for c in plan.candidates if c.route.name == ROUTE)
    assert math.isclose(quoted.expected_f, accuracy.view(ROUTE, quote).corrected)
