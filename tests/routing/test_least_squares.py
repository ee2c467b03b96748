"""The decaying least squares routing learns its linear models with (call holds, marketplace rates)."""

from __future__ import annotations

import math
import random

from service.routing.least_squares import DecayingLeastSquares


def test_exact_observations_give_the_coefficients_back():
    fit = DecayingLeastSquares(3, 0.998)
    rng = random.Random(3)
    for _ in range(50):
        x = (1.0, rng.uniform(0, 100), rng.uniform(0, 40))
        fit.add(x, 2.0 + 0.25 * x[1] + 1.5 * x[2])
    solved = fit.solve()
    assert solved is not None
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(solved, (2.0, 0.25, 1.5), strict=True))


def test_older_observations_are_forgotten():
    fit = DecayingLeastSquares(1, 0.9)
    for _ in range(200):
        fit.add((1.0,), 5.0)
    for _ in range(60):  # the relation moved: about six memories later the old one has faded
        fit.add((1.0,), 9.0)
    solved = fit.solve()
    assert solved is not None and abs(solved[0] - 9.0) < 0.01


def test_features_the_observations_cannot_tell_apart_solve_to_none():
    fit = DecayingLeastSquares(2, 0.995)
    for i in range(30):
        fit.add((1.0 + i, 2.0 * (1.0 + i)), 3.0)  # the second feature is always twice the first
    assert fit.solve(min_relative_pivot=1e-9) is None
    assert DecayingLeastSquares(2, 0.995).solve() is None  # nothing seen
