"""The capacity benchmark on a tiny trace (the full run is `python -m benchmarks.capacity`), its
oracle against brute force, and its token counts against counting whole prompts."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.capacity import oracle, reference
from benchmarks.capacity.__main__ import render
from benchmarks.capacity.run import Best, Config, World, run, where_lost
from benchmarks.capacity.simulate import PolicyTally
from benchmarks.capacity.text import ENCODINGS, build_corpus, token_count
from benchmarks.capacity.trace import build_requests, pick_segments

TINY = Config(seed=3, hours=0.1, loads=(3.0,), segments_per_kind=12, pilot_requests=400, oracle_seconds=20.0)


def test_a_tiny_run_ranks_the_oracle_first_and_prints_its_table():
    result = run(TINY)
    row = result["loads"][0]
    costs = {name: Decimal(p["cost_usd"]) for name, p in row["policies"].items()}
    assert row["requests"] > 100 and row["compared_requests"] > 0.95 * row["requests"]
    # Every online policy's calls fit the limits, so the oracle (optimal within them) costs no more;
    # and lifting the limits costs no more than that.
    assert costs["oracle, no limits"] <= costs["oracle"] <= min(costs["greedy"], costs["shadow price"])
    assert row["policies"]["oracle"]["gap_to_oracle_pct"] == 0.0
    # The load is three times the capacity: first come takes its flat-fee calls as they come.
    assert row["policies"]["greedy"]["plans_with_flat_fee_full"] > 0
    calls = [row["policies"][n]["flat_fee_calls"] for n in ("greedy", "shadow price", "oracle")]
    assert max(calls) <= 60 * 6 + 60  # six minutes at 60 a minute, plus the first window
    ref = row["online_reference"]
    assert 0 < ref["flat_fee_calls"] <= max(calls) and ref["gap_to_oracle_pct"] >= -0.5
    table = render(result)
    assert "online reference" in table and "found the pool full" in table
    lost = row["where_lost"]
    assert lost["full_pool"]["requests"] + lost["priced_out"]["requests"] <= calls[2]
    assert "seed 3" in table and "shadow price" in table and "oracle, no limits" in table


_instances = st.lists(st.tuples(st.floats(0.0, 200.0), st.floats(0.5, 120.0), st.floats(0.001, 0.1)),
                      min_size=1, max_size=9)


def _solved(calls, rate, concurrency):
    """(starts, durations, savings) in start order, and the oracle's choice among them."""
    calls = sorted(calls)
    starts, durations, savings = ([c[i] for c in calls] for i in range(3))
    return starts, durations, savings, oracle.allocate(starts, durations, savings, rate, concurrency)


@settings(max_examples=40, deadline=None)
@given(_instances, st.integers(1, 3), st.integers(1, 3))
def test_the_oracle_is_optimal_within_the_limits(calls, rate, concurrency):
    starts, durations, savings, choice = _solved(calls, rate, concurrency)
    oracle.check(starts, durations, choice.chosen, rate, concurrency)
    best = 0.0
    for mask in itertools.product((False, True), repeat=len(calls)):
        try:
            oracle.check(starts, durations, list(mask), rate, concurrency)
        except AssertionError:
            continue
        best = max(best, sum(s for s, m in zip(savings, mask, strict=True) if m))
    assert abs(choice.saving - best) < 1e-6
    assert choice.bound >= choice.saving - 1e-9


@settings(max_examples=40, deadline=None)
@given(_instances, st.integers(1, 3), st.integers(1, 3))
def test_the_online_reference_keeps_the_limits_and_never_beats_the_oracle(calls, rate, concurrency):
    starts, durations, savings, choice = _solved(calls, rate, concurrency)
    best = reference.best_online(starts, durations, savings, choice.chosen, rate, concurrency)
    oracle.check(starts, durations, best.chosen, rate, concurrency)
    assert best.saving <= choice.saving + 1e-9
    assert best.saving == sum(s for s, taken in zip(savings, best.chosen, strict=True) if taken)


def test_the_reference_follows_a_threshold_the_oracle_used():
    # Ten calls a second apart, one second long: no limit binds; the oracle took the five densest.
    starts = [float(i) for i in range(10)]
    durations = [1.0] * 10
    savings = [0.01 * (i % 5 + 1) * (1 if i < 5 else 3) for i in range(10)]
    taken = [s >= 0.03 for s in savings]
    thresholds = reference.window_thresholds(starts, savings, taken)
    assert reference.admit_online(starts, durations, savings, thresholds, 60, 10) == taken
    # Nothing taken in a window: nothing passes there.
    assert reference.window_thresholds([0.0, 1.0], [0.5, 0.9], [False, False]) == {0: float("inf")}


def test_a_prompt_counts_what_its_segments_count():
    corpus = build_corpus(5, per_kind=12)
    world = World(Config(seed=5, hours=0.05, segments_per_kind=12))
    rng = random.Random(9)
    for tenant in world.shape.tenants[:8]:
        for target in (2_000, 60_000):
            segments = pick_segments(corpus, tenant, rng.getrandbits(32), target)
            text = "".join(s.text for s in segments)
            for i, encoding in enumerate(ENCODINGS):
                summed = sum(s.tokens[i] for s in segments)
                exact = token_count(text, encoding)
                # At most a token where two segments meet: under 1% of any prompt, 0.1% of a long one.
                assert abs(summed - exact) <= len(segments) - 1 and abs(summed - exact) <= 0.01 * exact


def test_the_trace_is_the_same_for_a_seed():
    world = World(Config(seed=4, hours=0.05, segments_per_kind=12))
    first = build_requests(world.catalog, world.corpus, world.shape, world.truth, 120.0, 4)
    again = build_requests(world.catalog, world.corpus, world.shape, world.truth, 120.0, 4)
    assert first == again and len(first) > 200
    assert first[10].body(world.corpus, world.shape) == again[10].body(world.corpus, world.shape)


def test_where_lost_splits_the_oracles_calls_the_allocator_did_not_make():
    usd = Decimal
    bests = [
        Best(usd("0.05"), 10.0, None),  # 0: the oracle's; the allocator found the pool full
        Best(usd("0.03"), 5.0, None),  # 1: the oracle's; priced out
        Best(usd("0.02"), 2.0, None),  # 2: the allocator's, not the oracle's
        Best(None, 5.0, None),  # 3: only the flat fee serves it: no saving to compare
        Best(usd("0.05"), 8.0, None),  # 4: both made it
        Best(usd("0.05"), None, None),  # 5: the flat fee cannot serve it
    ]
    tally = PolicyTally(found_full={0, 3}, took_flat={2, 4})
    lost = where_lost(bests, {0, 1, 3, 4}, tally)
    assert lost["full_pool"] == {"requests": 1, "saving_usd": 0.04}
    assert lost["priced_out"] == {"requests": 1, "saving_usd": 0.02}
    assert lost["taken_instead"] == {"requests": 1, "saving_usd": 0.01}
    assert lost["median_usd_per_second"] == {"full_pool": 0.004, "allocator": round((0.01 / 2 + 0.04 / 8) / 2, 5)}
