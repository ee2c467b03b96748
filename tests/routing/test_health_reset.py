"""HealthBoard.status and reset(route): what GET /admin/routes shows and POST /admin/routes/reset does."""

from __future__ import annotations

from service.errors import ErrorKind
from service.routing.health import OPEN, BreakerConfig, HealthBoard


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _opened(board: HealthBoard, route: str) -> None:
    board.failure(route, ErrorKind.RATE_LIMITED, retry_after=30)


def test_status_counts_the_failures_in_the_window_only():
    clock = Clock()
    board = HealthBoard(BreakerConfig(window_seconds=60, min_failures=99), clock=clock)
    board.failure("a", ErrorKind.UPSTREAM_SERVER)
    clock.now += 45
    board.success("a", latency=0.5)
    board.failure("a", ErrorKind.UPSTREAM_SERVER)
    clock.now += 30  # the first failure is now 75 s old
    status = board.status("a")
    assert (status.circuit, status.recent_failures, status.recent_attempts) == ("closed", 1, 2)
    assert status.latency_seconds == 0.5


def test_an_open_circuit_shows_how_long_it_stays_open_then_half_opens():
    clock = Clock()
    board = HealthBoard(clock=clock)
    _opened(board, "a")
    assert board.status("a").circuit == "open"
    assert board.status("a").open_for_seconds == 30
    clock.now += 31
    assert board.status("a").circuit == "half_open"
    assert board.status("a").open_for_seconds == 0


def test_reset_of_one_route_leaves_the_others_open():
    changes: list[tuple[str, int]] = []
    board = HealthBoard(clock=Clock())
    board.on_change = lambda route, state: changes.append((route, state))
    _opened(board, "a")
    _opened(board, "b")
    assert board.reset("a") == ["a"]
    assert board.status("a").circuit == "closed"
    assert board.status("a").recent_failures == 0
    assert board.status("b").circuit == "open"
    assert changes[-1] == ("a", 0)  # the circuit gauge follows
    assert board.reset("unknown") == []
    assert sorted(board.reset()) == ["b"]
    assert board.state("b") != OPEN
