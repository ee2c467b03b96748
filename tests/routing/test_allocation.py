"""The flat-fee pool: several keys with their own limits, and the shadow prices that share them out."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from service.routing.allocation import FlatFeeAllocator
from service.routing.capacity import CapacityBoard, KeyLimits, Slot, split_limits


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def pool(keys: list[KeyLimits], clock: Clock) -> CapacityBoard:
    board = CapacityBoard(clock=clock)
    board.configure_pool("xpay", keys)
    return board


_keys = st.lists(st.builds(KeyLimits, st.integers(1, 8), st.integers(1, 4)), min_size=1, max_size=3)
# (seconds since the previous request, saving in USD, seconds the call takes)
_requests = st.lists(st.tuples(st.floats(0.0, 20.0), st.floats(0.0001, 0.2), st.floats(0.5, 90.0)),
                     min_size=1, max_size=120)


def play(board: CapacityBoard, clock: Clock, requests: list[tuple[float, float, float]],
         allocator: FlatFeeAllocator | None) -> list[tuple[float, float, float, int]]:
    """Serve requests in order as the gateway would: ask the allocator (if any), take a slot on
    room, hold it for the call, release it when the call ends. Returns (start, end, saving, key)
    of every call started; checks that a refusal happens only with every key at a limit."""
    running: list[tuple[float, Slot]] = []
    started: list[tuple[float, float, float, int]] = []
    for gap, saving, seconds in requests:
        now = clock.now + gap
        for end, slot in sorted(running, key=lambda r: r[0]):
            if end <= now:
                clock.now = end
                board.release_slot(slot)
                if allocator is not None:
                    allocator.observe_call(1_000, 100, end - slot.started, slot.route)
        running = [(end, slot) for end, slot in running if end > now]
        clock.now = now
        if allocator is not None and not allocator.consider(saving, prompt_tokens=1_000, output_tokens=100,
                                                            route="xpay:m"):
            continue
        slot = board.acquire_slot("xpay", "xpay:m")
        if slot is None:
            for index, key in enumerate(board.keys("xpay")):
                in_flight = sum(1 for _, held in running if held.key == index)
                recent = sum(1 for t, _, _, k in started if k == index and t > now - 60.0)
                assert in_flight >= (key.concurrency or 0) or recent >= (key.rpm or 0)
            continue
        running.append((now + seconds, slot))
        started.append((now, now + seconds, saving, slot.key))
    return started


@settings(max_examples=80, deadline=None)
@given(_keys, _requests, st.booleans())
def test_never_more_calls_than_any_key_allows(keys, requests, priced):
    clock = Clock()
    board = pool(keys, clock)
    allocator = FlatFeeAllocator(board, "xpay", clock=clock) if priced else None
    calls = play(board, clock, requests, allocator)
    for index, limits in enumerate(keys):
        mine = [(start, end) for start, end, _, key in calls if key == index]
        for start, _ in mine:
            assert sum(1 for s, _ in mine if start - 60.0 < s <= start) <= limits.rpm
            assert sum(1 for s, e in mine if s <= start < e) <= limits.concurrency


def test_a_pool_spreads_calls_over_its_keys_and_says_which_key():
    clock = Clock()
    board = pool([KeyLimits(60, 2), KeyLimits(60, 2)], clock)
    slots = [board.acquire_slot("xpay", "xpay:m") for _ in range(4)]
    assert all(s is not None for s in slots)
    assert sorted(s.key for s in slots) == [0, 0, 1, 1]
    assert board.acquire_slot("xpay", "xpay:m") is None
    assert not board.has_room("xpay")
    clock.now += 12.0
    board.release_slot(slots[1])
    again = board.acquire_slot("xpay", "xpay:m")
    assert again is not None and again.key == slots[1].key
    assert board.mean_hold("xpay") == 12.0


def test_the_old_acquire_and_release_still_work_on_one_key():
    clock = Clock()
    board = CapacityBoard(clock=clock)
    board.configure("xpay", rpm=2, concurrency=1)
    assert board.acquire("xpay", "xpay:m")
    assert not board.acquire("xpay", "xpay:m")
    board.release("xpay", "xpay:m")
    assert board.inflight("xpay:m") == 0
    assert board.acquire("xpay", "xpay:m")  # the second call of the minute
    board.release("xpay", "xpay:m")
    assert not board.acquire("xpay", "xpay:m")  # the rate, not the concurrency, refuses now
    clock.now += 60.0
    assert board.acquire("xpay", "xpay:m")


@given(st.lists(st.builds(KeyLimits, st.none() | st.integers(0, 500), st.none() | st.integers(0, 50)),
                min_size=1, max_size=4), st.integers(1, 12))
def test_process_shares_add_up_to_each_key(keys, processes):
    shares = [split_limits(keys, processes, i) for i in range(processes)]
    for k, limits in enumerate(keys):
        for name in ("rpm", "concurrency"):
            whole = getattr(limits, name)
            parts = [getattr(share[k], name) for share in shares]
            if whole is None:
                assert parts == [None] * processes
            else:
                assert sum(parts) == whole and max(parts) - min(parts) <= 1


def test_prices_are_zero_while_demand_fits_and_fall_back_when_capacity_goes_unused():
    clock = Clock()
    board = pool([KeyLimits(60, 10)], clock)
    allocator = FlatFeeAllocator(board, "xpay", clock=clock)
    rng = random.Random(7)
    # Twenty requests a minute that would each hold a slot 10 s: well within 60/min and 10 at once.
    for _ in range(200):
        clock.now += 3.0
        allocator.consider(rng.uniform(0.001, 0.05), prompt_tokens=1_000, output_tokens=100)
    assert allocator.prices().per_call == allocator.prices().per_second == 0.0
    # Then 600 a minute: far more than the key takes, so the prices rise.
    for _ in range(3_000):
        clock.now += 0.1
        allocator.consider(rng.uniform(0.001, 0.05), prompt_tokens=1_000, output_tokens=100)
    busy = allocator.prices()
    assert busy.per_call + busy.per_second * 10.0 > 0.01
    # Demand stops; once the window has passed, the idle pool prices a call at nothing again.
    clock.now += allocator.window + 5.0
    idle = allocator.prices()
    assert idle.per_call == idle.per_second == 0.0
    assert allocator.consider(0.0005, prompt_tokens=1_000, output_tokens=100)


def test_idle_keys_lower_the_prices_for_the_same_demand():
    def priced(full: bool) -> float:
        clock = Clock()
        board = pool([KeyLimits(60, 10)], clock)
        allocator = FlatFeeAllocator(board, "xpay", clock=clock)
        rng = random.Random(3)
        if full:
            for _ in range(10):
                assert board.acquire_slot("xpay", "xpay:m") is not None
        for _ in range(1_500):
            clock.now += 0.2
            allocator.consider(rng.uniform(0.001, 0.05), prompt_tokens=1_000, output_tokens=100)
        prices = allocator.prices()
        return prices.per_call + prices.per_second * 10.0

    assert priced(full=False) < priced(full=True)


def _scarce_stream(seed: int) -> list[tuple[float, float, float]]:
    """About three times what one key takes: 180 requests a minute wanting 10-second calls."""
    rng = random.Random(seed)
    return [(rng.expovariate(3.0), rng.lognormvariate(-4.5, 1.0), rng.uniform(4.0, 16.0)) for _ in range(6_000)]


def test_under_scarcity_the_flat_fee_goes_to_the_larger_savings():
    for seed in (1, 2, 3):
        requests = _scarce_stream(seed)
        clock = Clock()
        first_come = play(pool([KeyLimits(60, 10)], clock), clock, requests, None)
        clock = Clock()
        board = pool([KeyLimits(60, 10)], clock)
        priced = play(board, clock, requests, FlatFeeAllocator(board, "xpay", clock=clock))
        offered = sum(s for _, s, _ in requests) / len(requests)
        mean_priced = sum(s for _, _, s, _ in priced) / len(priced)
        assert mean_priced > 2 * offered
        # The same keys save more in total, though they start no more calls than first come.
        assert sum(s for _, _, s, _ in priced) > 1.5 * sum(s for _, _, s, _ in first_come)
        assert len(priced) <= len(first_come)


def test_a_request_with_no_other_route_is_never_held_back():
    clock = Clock()
    board = pool([KeyLimits(60, 10)], clock)
    allocator = FlatFeeAllocator(board, "xpay", clock=clock)
    for _ in range(2_000):
        clock.now += 0.05
        allocator.consider(0.2, prompt_tokens=1_000, output_tokens=100)
    assert not allocator.consider(0.0001, prompt_tokens=1_000, output_tokens=100)
    assert allocator.consider(float("inf"), prompt_tokens=1_000, output_tokens=100)


def test_the_hold_of_a_call_is_learned_per_route():
    clock = Clock()
    board = pool([KeyLimits(60, 10)], clock)
    allocator = FlatFeeAllocator(board, "xpay", clock=clock)
    rng = random.Random(5)
    for _ in range(300):
        prompt, output = rng.randint(100, 100_000), rng.randint(10, 4_000)
        # A fast model and a slow one: prefill and decode at different speeds.
        allocator.observe_call(prompt, output, 0.3 + prompt / 10_000 + output / 100, "xpay:fast")
        allocator.observe_call(prompt, output, 0.5 + prompt / 4_000 + output / 40, "xpay:slow")
    assert abs(allocator.expected_hold(50_000, 1_000, "xpay:fast") - 15.3) < 0.5
    assert abs(allocator.expected_hold(50_000, 1_000, "xpay:slow") - 38.0) < 1.0
    # A route with no calls of its own falls back on the pool's fit, between the two.
    assert 15.3 < allocator.expected_hold(50_000, 1_000, "xpay:new") < 38.0


def test_a_burst_raises_the_slot_price_before_the_window_catches_up():
    """The same demand priced higher when it all came in the last minute than when it was spread over
    the five-minute window: bursts last minutes, and a rate counted over the whole window trails them."""
    def slot_price(arrivals: list[float]) -> float:
        clock = Clock()
        board = pool([KeyLimits(6_000, 10)], clock)  # the slots bind, not the rate
        allocator = FlatFeeAllocator(board, "xpay", clock=clock)
        rng = random.Random(3)
        start = clock.now
        for at in arrivals:
            clock.now = start + at
            allocator.consider(rng.uniform(0.001, 0.05), prompt_tokens=1_000, output_tokens=100)
        clock.now = start + 302.5
        for _ in range(9):
            assert board.acquire_slot("xpay", "xpay:m") is not None
        return allocator.prices().per_second

    trickle = [10.0 * i + 5.0 for i in range(24)]  # the window's first four minutes: one every 10 s
    spread = sorted(trickle + [5.0 + i * 0.49 for i in range(600)])
    burst = trickle + [242.5 + i * 0.099 for i in range(600)]
    assert slot_price(burst) > 1.25 * slot_price(spread) > 0
