"""Least squares that follows a drifting relation: the normal equations' sums, older observations
forgotten by a constant factor each time one is added, solved on demand. Used where routing learns
a small linear model from what upstreams report (a call's hold from its tokens, a marketplace's
charge from its tokens)."""

from __future__ import annotations

from collections.abc import Sequence


class DecayingLeastSquares:
    def __init__(self, features: int, forget: float) -> None:
        self.features = features
        self.forget = forget
        self.xx = [[0.0] * features for _ in range(features)]
        self.xy = [0.0] * features
        self.n = 0

    def add(self, x: Sequence[float], y: float) -> None:
        k = self.forget
        xx, xy = self.xx, self.xy
        for i in range(self.features):
            row = xx[i]
            for j in range(self.features):
                row[j] = k * row[j] + x[i] * x[j]
            xy[i] = k * xy[i] + x[i] * y
        self.n += 1

    def solve(self, *, ridge: float = 0.0, min_pivot: float = 1e-12,
              min_relative_pivot: float = 0.0) -> tuple[float, ...] | None:
        """The coefficients, or None when the observations cannot tell them apart: a pivot below
        `min_pivot`, or below `min_relative_pivot` times its column's own sum of squares. `ridge`
        adds that share of each diagonal (plus itself) before solving."""
        size = self.features
        m = [[*row, self.xy[i]] for i, row in enumerate(self.xx)]
        scale = [self.xx[i][i] for i in range(size)]
        for i in range(size):
            m[i][i] += ridge * (1.0 + abs(m[i][i]))
        for col in range(size):
            pivot = max(range(col, size), key=lambda r: abs(m[r][col]))
            if abs(m[pivot][col]) < max(min_pivot, min_relative_pivot * scale[col]):
                return None
            m[col], m[pivot] = m[pivot], m[col]
            for r in range(size):
                if r != col:
                    factor = m[r][col] / m[col][col]
                    for k in range(col, size + 1):
                        m[r][k] -= factor * m[col][k]
        return tuple(m[i][size] / m[i][i] for i in range(size))
