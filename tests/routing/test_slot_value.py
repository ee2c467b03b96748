"""What one more busy slot costs: the loss-system admission prices, and the allocator that uses them."""

from __future__ import annotations

import random

from service.routing.allocation import FlatFeeAllocator
from service.routing.capacity import CapacityBoard, KeyLimits
from service.routing.slot_value import RewardCurve, slot_costs


def _value_iteration(rewards: list[float], arrivals: float, hold: float, slots: int) -> list[float]:
    """The same costs the slow way: relative value iteration on the uniformised chain."""
    curve = RewardCurve(rewards)
    service = 1.0 / hold
    rate = arrivals + slots * service
    value = [0.0] * (slots + 1)
    for _ in range(6_000):
        new = []
        for n in range(slots + 1):
            v = arrivals * (value[n] + curve.phi(value[n] - value[n + 1])) if n < slots else arrivals * value[n]
            v += n * service * (value[n - 1] if n else value[n]) + (slots - n) * service * value[n]
            new.append(v / rate)
        value = [v - new[0] for v in new]
    return [value[n] - value[n + 1] for n in range(slots)]


def test_the_costs_solve_the_loss_system():
    rng = random.Random(1)
    rewards = [rng.lognormvariate(0.0, 1.0) for _ in range(300)]
    for arrivals in (0.05, 1.0, 3.0):
        fast = slot_costs(rewards, arrivals, 10.0, 4)
        slow = _value_iteration(rewards, arrivals, 10.0, 4)
        assert all(abs(a - b) <= 1e-6 * (1 + b) for a, b in zip(fast, slow, strict=True))
        # One more busy slot costs more the fuller the pool.
        assert fast == sorted(fast)
        assert fast[0] < fast[-1]


def test_scarcer_capacity_costs_more_and_no_demand_costs_nothing():
    rewards = [0.01 * (i + 1) for i in range(100)]
    quiet, busy = slot_costs(rewards, 0.2, 10.0, 10), slot_costs(rewards, 5.0, 10.0, 10)
    assert all(q < b for q, b in zip(quiet, busy, strict=True))
    assert slot_costs(rewards, 0.0, 10.0, 10) == [0.0] * 10
    assert slot_costs([], 1.0, 10.0, 3) == [0.0] * 3


def test_the_reward_curve_inverts():
    curve = RewardCurve([0.5, 1.0, 1.0, 4.0])
    for x in (0.0, 0.25, 0.75, 1.0, 2.5, 3.9):
        assert abs(curve.inverse(curve.phi(x)) - x) < 1e-12
    assert curve.inverse(0.0) == float("inf")
    assert curve.inverse(10.0) == 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _allocator(per_second: float, seconds: float = 300.0) -> tuple[FlatFeeAllocator, CapacityBoard, Clock]:
    """One key of 60 a minute, 10 at once, after `seconds` of demand arriving `per_second`, each
    call expected to hold its slot 10 s, savings spread over 0.1 to 10 cents."""
    clock = Clock()
    board = CapacityBoard(clock=clock)
    board.configure_pool("xpay", [KeyLimits(60, 10)])
    allocator = FlatFeeAllocator(board, "xpay", clock=clock)
    for _ in range(10):  # the pool's own timing: ten calls of 10 s
        allocator.observe_call(1_000, 100, 10.0, "xpay:m")
    rng = random.Random(11)
    for _ in range(int(seconds * per_second)):
        clock.now += 1.0 / per_second
        allocator.consider(rng.uniform(0.001, 0.1), prompt_tokens=1_000, output_tokens=100, route="xpay:m")
    return allocator, board, clock


def test_when_scarce_the_flat_fee_goes_to_high_savings_and_more_so_as_the_slots_fill():
    # Three requests a second wanting 10-second calls: 30 slots' worth for 10 slots.
    allocator, board, clock = _allocator(3.0)
    clock.now += 2.0  # past the recompute interval
    assert allocator.consider(0.095, prompt_tokens=1_000, output_tokens=100, route="xpay:m", count=False)
    assert not allocator.consider(0.005, prompt_tokens=1_000, output_tokens=100, route="xpay:m", count=False)
    idle = allocator.prices().per_second
    for _ in range(9):
        assert board.acquire_slot("xpay", "xpay:m") is not None
    nearly_full = allocator.prices().per_second
    assert 0.0 < idle < nearly_full
    # A saving worth a slot while the pool is idle is not worth its last one.
    middling = (idle + nearly_full) / 2 * 10.0
    assert not allocator.consider(middling, prompt_tokens=1_000, output_tokens=100, route="xpay:m", count=False)


def test_when_capacity_is_idle_every_saving_takes_the_flat_fee():
    # One request every ten seconds wanting a 10-second call: a tenth of a slot.
    allocator, _, clock = _allocator(0.1, seconds=600.0)
    clock.now += 2.0
    assert allocator.prices().per_call == allocator.prices().per_second == 0.0
    assert allocator.consider(0.0001, prompt_tokens=1_000, output_tokens=100, route="xpay:m", count=False)
