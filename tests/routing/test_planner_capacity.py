"""The planner with the flat-fee allocator, the context margin, quote accuracy and measured sorts."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from service.routing.allocation import FlatFeeAllocator
from service.routing.capacity import CapacityBoard, KeyLimits
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.no_route import no_route_error
from service.routing.plan import Plan
from service.routing.planner import Planner, Policy
from service.routing.quotes import QuoteAccuracy

from .checks import prepare
from .test_planner_examples import GPT_OSS, KIMI, LONG_PROMPT, body, names
from .world import ALL_FRONT_ENDS, default_catalog

K2_THINKING = "moonshotai/Kimi-K2-Thinking"  # no Baseten price: xpay, or Orthogonal once quoted
GLM_52 = "zai-org/GLM-5.2"  # a million tokens of context


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    """The routing state one gateway process holds, with the allocator for xpay."""

    clock: Clock
    board: CapacityBoard
    allocator: FlatFeeAllocator
    planner: Planner
    health: HealthBoard

    def plan(self, request_body: dict[str, Any], quotes: dict[str, Decimal] | None = None,
             tenant: Any = None) -> Plan:
        req = prepare(request_body)
        return self.planner.plan(req.view.model, req.needs, req.prefs, Policy(tenant=tenant),
                                 fallbacks=req.view.models, quotes=quotes)


def gateway(quote_accuracy: QuoteAccuracy | None = None) -> Gateway:
    clock = Clock()
    board = CapacityBoard(clock=clock)
    board.configure_pool("xpay", [KeyLimits(60, 10)])
    allocator = FlatFeeAllocator(board, "xpay", clock=clock)
    health = HealthBoard(clock=clock)
    planner = Planner(default_catalog(), enabled_front_ends=ALL_FRONT_ENDS, health=health, capacity=board,
                      calibration=Calibration(), allocators={"xpay": allocator}, quote_accuracy=quote_accuracy)
    return Gateway(clock, board, allocator, planner, health)


def crowd(gw: Gateway, saving: float, requests: int = 3_000, every: float = 0.1) -> None:
    """Demand far beyond one key: ten requests a second, each expecting to save `saving`."""
    for _ in range(requests):
        gw.clock.now += every
        gw.allocator.consider(saving, prompt_tokens=40_000, output_tokens=256)


def test_without_scarcity_the_flat_fee_is_taken_wherever_it_is_cheaper():
    gw = gateway()
    plan = gw.plan(body(KIMI, chars=90_000))  # ~22,500 tokens: Baseten ~0.0143, xpay 0.01
    assert names(plan)[0] == f"xpay:{KIMI}" and not plan.candidates[0].held_back


def test_under_scarcity_a_small_saving_gives_way_and_a_large_one_keeps_the_flat_fee():
    gw = gateway()
    crowd(gw, saving=0.03)
    small = gw.plan(body(KIMI, chars=90_000))  # saves ~0.004
    assert names(small)[0] == f"baseten:{KIMI}"
    xpay = next(c for c in small.candidates if c.route.front_end == "xpay")
    assert xpay.held_back and xpay.expected == Decimal("0.01")  # still a fallback, after the others
    large = gw.plan(body(KIMI, chars=600_000))  # ~150,000 tokens: saves ~0.08
    assert names(large)[0] == f"xpay:{KIMI}" and not large.candidates[0].held_back


def test_a_request_counts_as_demand_once_though_planned_again_with_quotes():
    gw = gateway()
    first = gw.plan(body(KIMI, chars=LONG_PROMPT))
    assert gw.allocator.admitted + gw.allocator.held_back == 1
    orthogonal = next(c for c in first.candidates if c.route.front_end == "orthogonal")
    assert orthogonal.cost_basis == "estimated_quote"
    gw.plan(body(KIMI, chars=LONG_PROMPT), quotes={orthogonal.route.name: Decimal("0.02")})
    assert gw.allocator.admitted + gw.allocator.held_back == 1


def test_a_request_awaiting_its_only_other_price_counts_with_the_quote():
    gw = gateway()
    crowd(gw, saving=0.03)
    first = gw.plan(body(K2_THINKING, chars=LONG_PROMPT))
    # Orthogonal has no price until quoted: the first plan neither counts nor holds xpay back.
    assert names(first) == [f"xpay:{K2_THINKING}"]
    assert gw.allocator.admitted + gw.allocator.held_back == 3_000
    quoted = gw.plan(body(K2_THINKING, chars=LONG_PROMPT), quotes={f"orthogonal:{K2_THINKING}": Decimal("0.012")})
    assert gw.allocator.admitted + gw.allocator.held_back == 3_001
    # Saving 0.002 against prices set by savings of 0.03: Orthogonal first, xpay held back.
    assert names(quoted) == [f"orthogonal:{K2_THINKING}", f"xpay:{K2_THINKING}"]


def test_the_flat_fee_as_the_only_route_is_never_held_back():
    gw = gateway()
    crowd(gw, saving=0.5)
    plan = gw.plan(body(K2_THINKING, chars=LONG_PROMPT, stop=[f"<s{i}>" for i in range(6)]))  # Orthogonal: 4 stops
    assert names(plan) == [f"xpay:{K2_THINKING}"] and not plan.candidates[0].held_back


def test_a_full_pool_still_counts_the_request_as_demand():
    gw = gateway()
    for _ in range(10):
        assert gw.board.acquire_slot("xpay", f"xpay:{KIMI}") is not None
    plan = gw.plan(body(KIMI, chars=LONG_PROMPT))
    assert f"xpay:{KIMI}" not in names(plan)
    assert gw.allocator.admitted + gw.allocator.held_back == 1


def test_a_client_ordered_flat_fee_is_its_choice():
    gw = gateway()
    crowd(gw, saving=0.03)
    plan = gw.plan(body(KIMI, chars=90_000, provider={"order": ["xpay"]}))
    assert names(plan)[0] == f"xpay:{KIMI}" and not plan.candidates[0].held_back


# ---- the context margin ------------------------------------------------------------------------

def test_a_prompt_that_may_fit_is_tried_after_the_routes_it_surely_fits():
    gw = gateway()
    # ~118,000 estimated tokens + 4,000 output on gpt-oss-120b's 128,072: over with the 10% margin,
    # under without it (the requests: 123k and 126k true tokens, estimates within 1.2%).
    request = body(GPT_OSS, chars=472_000, max_tokens=4_000, models=[GLM_52])
    plan = gw.plan(request)
    sure = [c for c in plan.candidates if not c.context_uncertain]
    maybe = [c for c in plan.candidates if c.context_uncertain]
    assert {c.route.model for c in sure} == {GLM_52} and {c.route.model for c in maybe} == {GPT_OSS}
    assert plan.candidates == sure + maybe
    alone = gw.plan(body(GPT_OSS, chars=472_000, max_tokens=4_000))
    assert alone.candidates and all(c.context_uncertain for c in alone.candidates)


def test_the_calibrated_estimate_keeps_a_prompt_near_the_limit():
    gw = gateway()
    for _ in range(30):  # gpt-oss's real counts run 1% over the estimate
        gw.planner.calibration.observe(GPT_OSS, 10_000, 10_100, 300)
    plan = gw.plan(body(GPT_OSS, chars=496_000, max_tokens=2_000))  # ~124,000 x 1.01: 125,240 + 2,000 fit
    assert names(plan)[0] == f"xpay:{GPT_OSS}"  # ~0.0125 direct against the flat 0.01
    assert {c.route.front_end for c in plan.candidates} == {"baseten", "xpay", "orthogonal"}


def test_only_a_prompt_that_surely_exceeds_every_context_is_refused_in_openai_words():
    gw = gateway()
    plan = gw.plan(body(GPT_OSS, chars=640_000))  # ~160,000 tokens: at least ~145,000 > 128,072
    assert not plan.candidates
    err = no_route_error(plan, gw.planner.catalog)
    assert (err.status, err.code, err.param) == (400, "context_length_exceeded", "messages")
    found = re.match(r"This model's maximum context length is 128072 tokens\. However, you requested about "
                     r"(\d+) tokens \((\d+) in the messages, 0 in the completion\)\. Please reduce", err.message)
    assert found and found[1] == found[2]
    base = prepare(body(GPT_OSS, chars=640_000)).needs.base_prompt_tokens
    assert int(found[2]) == math.floor(base / 1.1) > 128_072  # the fewest it may count, still too many


# ---- quotes as far as they have proved accurate ----------------------------------------------

def test_a_quote_that_has_proved_low_is_corrected():
    accuracy = QuoteAccuracy()
    route = f"orthogonal:{KIMI}"
    for _ in range(40):
        accuracy.observe(route, Decimal("0.004"), Decimal("0.012"))  # charges three times the quote
    gw = gateway(accuracy)
    plan = gw.plan(body(KIMI, chars=LONG_PROMPT), quotes={route: Decimal("0.004")})
    assert names(plan)[0] == f"xpay:{KIMI}"  # 0.012 as corrected, against xpay's 0.01
    quoted = next(c for c in plan.candidates if c.route.name == route)
    assert quoted.cost_basis == "quoted" and quoted.low == Decimal("0.004")  # what was quoted, shown as such
    assert abs(quoted.expected_f - 0.012) < 0.0015


def test_a_quote_with_no_record_is_believed_and_an_erratic_one_leans_on_the_estimate():
    route = f"orthogonal:{KIMI}"
    believed = gateway(QuoteAccuracy()).plan(body(KIMI, chars=LONG_PROMPT), quotes={route: Decimal("0.004")})
    assert names(believed)[0] == route
    accuracy = QuoteAccuracy()
    rng = random.Random(11)
    for _ in range(200):
        accuracy.observe(route, Decimal("0.004"), Decimal("0.004") * Decimal(str(round(rng.lognormvariate(0, 1.0), 4))))
    assert accuracy.view(route, Decimal("0.004")).trust < 0.2
    erratic = gateway(accuracy).plan(body(KIMI, chars=LONG_PROMPT), quotes={route: Decimal("0.004")})
    assert names(erratic)[0] == f"xpay:{KIMI}"


# ---- sort by measured throughput and latency ------------------------------------------------

def test_throughput_and_latency_sorts_follow_measurements():
    gw = gateway()
    # Baseten streams fast after a slow start; Orthogonal is quick to answer but slow to decode.
    for _ in range(5):
        gw.health.success(f"baseten:{KIMI}", latency=12.0, ttft=2.0, output_tokens=1_000)  # 100 tokens/s
        gw.health.success(f"orthogonal:{KIMI}", latency=21.0, ttft=1.0, output_tokens=1_000)  # 50 tokens/s
    assert abs(gw.health.tokens_per_second(f"baseten:{KIMI}") - 100.0) < 1e-6
    fastest = gw.plan(body(KIMI, chars=LONG_PROMPT, provider={"sort": "throughput"}))
    assert names(fastest) == [f"baseten:{KIMI}", f"orthogonal:{KIMI}", f"xpay:{KIMI}"]  # unmeasured last
    quickest = gw.plan(body(KIMI, chars=LONG_PROMPT, provider={"sort": "latency"}))
    assert names(quickest) == [f"orthogonal:{KIMI}", f"baseten:{KIMI}", f"xpay:{KIMI}"]


def test_a_buffered_answer_measures_its_pace_over_the_whole_call():
    health = HealthBoard(clock=lambda: 0.0)
    health.success("xpay:m", latency=20.0, ttft=20.0, output_tokens=1_000)  # first token came with the rest
    assert health.tokens_per_second("xpay:m") == 50.0
    health.success("xpay:n", latency=1.0, ttft=0.5, output_tokens=3)  # too short to tell a pace
    assert health.tokens_per_second("xpay:n") is None
