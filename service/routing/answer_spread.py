"""How far answer lengths spread around their mean, and what a cap does to them.

Answer lengths are strongly right-skewed: the same tenant asking the same model gets a one-line
answer and then a three-page one. A cap (`max_tokens`, or the upstream's default) cuts the long
ones short, so the mean length of a capped request is below both the uncapped mean and the cap:
taking min(mean, cap) overstates it, and most when the cap is near the mean, which is where the
choice between a per-token price and a flat fee is closest. The spread is modelled as log-normal
(the shape of measured answer-length distributions), with its log standard deviation learned per
model from the answers themselves.
"""

from __future__ import annotations

import math

# Before a model has shown its own spread: a wide one (a factor of about 2.2 either way).
PRIOR_SIGMA = 0.8
MIN_SIGMA, MAX_SIGMA = 0.05, 2.5
_SQRT2 = math.sqrt(2.0)


def _upper(x: float) -> float:
    """P(Z > x) for a standard normal Z, accurate far into the tail."""
    return 0.5 * math.erfc(x / _SQRT2)


def negligible_cap(sigma: float) -> float:
    """Caps at or past this multiple of the mean change it by under 0.01%: the mean stands as it is
    (planning asks for the capped mean of every candidate model; most caps are far above it)."""
    sigma = min(max(sigma, MIN_SIGMA), MAX_SIGMA)
    return math.exp(sigma * (4.0 + sigma / 2))


def capped_mean(mean: float, sigma: float, cap: float) -> float:
    """E[min(X, cap)] for a log-normal X with mean `mean` and log standard deviation `sigma`."""
    if cap <= 0 or mean <= 0:
        return 0.0
    sigma = min(max(sigma, MIN_SIGMA), MAX_SIGMA)
    mu = math.log(mean) - sigma * sigma / 2
    a = (math.log(cap) - mu) / sigma
    return mean * (1.0 - _upper(a - sigma)) + cap * _upper(a)


def tail_mean(mean: float, sigma: float, cap: float) -> float:
    """E[X | X >= cap]: what an answer cut off at `cap` would have run to, on average."""
    if mean <= 0:
        return cap
    sigma = min(max(sigma, MIN_SIGMA), MAX_SIGMA)
    mu = math.log(mean) - sigma * sigma / 2
    a = (math.log(cap) - mu) / sigma if cap > 0 else -math.inf
    beyond = _upper(a)
    if beyond < 1e-12:
        return cap  # the model says it cannot happen; it did, so it ran at least this far
    return max(cap, mean * _upper(a - sigma) / beyond)


def sigma_from(mean_log: float, mean_log_sq: float) -> float:
    """The log standard deviation from running means of log residuals and of their squares."""
    variance = mean_log_sq - mean_log * mean_log
    return min(max(math.sqrt(max(variance, 0.0)), MIN_SIGMA), MAX_SIGMA)
