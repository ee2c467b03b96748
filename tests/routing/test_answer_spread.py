"""Expected answer length under a cap, a reasoning effort, and a tenant's own way with each model.

The truth here is sampled: log-normal answers (the shape measured answer lengths have), cut at
the request's cap the way an upstream cuts them, so the learned expectation is checked against
what the answers really average, not against the formula that produced it.
"""

from __future__ import annotations

import math
import random
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from service.routing.answer_spread import capped_mean, negligible_cap, sigma_from, tail_mean
from service.routing.estimate import Calibration

MODEL = "zai-org/GLM-4.7"
OTHER = "moonshotai/Kimi-K2.5"

means = st.floats(min_value=1.0, max_value=50_000.0)
sigmas = st.floats(min_value=0.05, max_value=2.0)
caps = st.floats(min_value=1.0, max_value=200_000.0)


def lognormal(rng: random.Random, mean: float, sigma: float) -> float:
    return math.exp(rng.gauss(math.log(mean) - sigma * sigma / 2, sigma))


@given(means, sigmas, caps)
def test_a_cap_leaves_less_than_both_the_mean_and_the_cap(mean: float, sigma: float, cap: float):
    value = capped_mean(mean, sigma, cap)
    assert 0 < value <= min(mean, cap) * (1 + 1e-9)


@given(means, sigmas, caps, st.floats(min_value=1.0, max_value=10.0))
def test_a_higher_cap_never_leaves_less(mean: float, sigma: float, cap: float, factor: float):
    assert capped_mean(mean, sigma, cap * factor) >= capped_mean(mean, sigma, cap) * (1 - 1e-9)


@given(means, sigmas, st.floats(min_value=1.0, max_value=100.0))
def test_past_the_negligible_cap_the_mean_stands(mean: float, sigma: float, beyond: float):
    # Planning skips the formula there; it must be because the formula would say the same.
    assert abs(capped_mean(mean, sigma, mean * negligible_cap(sigma) * beyond) - mean) <= 1e-4 * mean


@given(means, sigmas, caps)
def test_an_answer_cut_off_at_the_cap_ran_at_least_that_far(mean: float, sigma: float, cap: float):
    assert tail_mean(mean, sigma, cap) >= cap


@settings(max_examples=20, deadline=None)
@given(st.floats(min_value=50.0, max_value=5_000.0), st.floats(min_value=0.3, max_value=1.2),
       st.floats(min_value=0.2, max_value=5.0), st.integers(min_value=0, max_value=2**32))
def test_the_formulas_agree_with_sampled_answers(mean: float, sigma: float, cap_over_mean: float, seed: int):
    rng = random.Random(seed)
    cap = mean * cap_over_mean
    answers = [lognormal(rng, mean, sigma) for _ in range(40_000)]
    sampled = statistics.fmean(min(a, cap) for a in answers)
    assert abs(capped_mean(mean, sigma, cap) - sampled) / sampled < 0.03
    beyond = [a for a in answers if a >= cap]
    if len(beyond) >= 2_000:
        assert abs(tail_mean(mean, sigma, cap) - statistics.fmean(beyond)) / statistics.fmean(beyond) < 0.05
    logs = [math.log(a / mean) for a in answers]
    learned = sigma_from(statistics.fmean(logs), statistics.fmean(x * x for x in logs))
    assert abs(learned - sigma) < 0.03


def serve(calibration: Calibration, rng: random.Random, mean: float, sigma: float, cap: int, answers: int,
          tenant: object = None, effort: str | None = None, model: str = MODEL) -> list[int]:
    """Answers as an upstream gives them: log-normal, cut at the cap; each one taught to the calibration."""
    given_back = []
    for _ in range(answers):
        tokens = min(cap, max(1, round(lognormal(rng, mean, sigma))))
        calibration.observe(model, 1_000, 1_000, tokens, tenant=tenant, cap=cap, effort=effort)
        given_back.append(tokens)
    return given_back


def test_answers_cut_at_a_cap_near_their_mean_do_not_teach_a_short_mean():
    # Half the answers hit the cap. Averaging what came back would learn the cut answers' mean
    # (about 0.7 of the truth) and expect it of every uncapped request after.
    rng = random.Random(7)
    calibration = Calibration()
    given_back = serve(calibration, rng, mean=1_500, sigma=0.8, cap=1_100, answers=3_000)
    assert statistics.fmean(given_back) < 0.75 * 1_500
    learned = calibration.expected_output(MODEL, None)
    assert abs(learned - 1_500) / 1_500 < 0.15
    # And under the same cap it expects what such answers average.
    assert abs(calibration.expected_output(MODEL, 1_100) - statistics.fmean(given_back[-1_000:])) < 0.1 * 1_100


def test_under_a_cap_the_expectation_is_the_capped_answers_mean_not_the_cap():
    rng = random.Random(11)
    calibration = Calibration()
    serve(calibration, rng, mean=800, sigma=0.9, cap=100_000, answers=2_000)  # uncapped: learns mean and spread
    cap = 900
    truth = statistics.fmean(min(cap, lognormal(rng, 800, 0.9)) for _ in range(40_000))
    expected = calibration.expected_output(MODEL, cap)
    assert abs(expected - truth) / truth < 0.15
    assert expected < 0.8 * cap  # min(mean, cap) would say 800


def test_a_reasoning_effort_learns_its_own_length_on_every_model():
    rng = random.Random(3)
    calibration = Calibration()
    for model in (MODEL, OTHER):
        serve(calibration, rng, 600, 0.5, 100_000, 400, model=model)
        serve(calibration, rng, 600 * 2.5, 0.5, 100_000, 60, effort="high", model=model)
    default, high = calibration.expected_output(MODEL, None), calibration.expected_output(MODEL, None, effort="high")
    assert 2.0 < high / default < 3.1
    # The model's own mean is not pulled up by its high-effort answers.
    assert abs(default - 600) / 600 < 0.2
    assert calibration.expected_output(OTHER, None, effort="low") == calibration.expected_output(OTHER, None)


def test_a_tenant_that_runs_long_on_one_model_only_is_expected_long_there_only():
    rng = random.Random(5)
    calibration = Calibration()
    tenant = "reports-team"
    for model in (MODEL, OTHER):
        serve(calibration, rng, 500, 0.4, 100_000, 300, model=model)
    for _ in range(40):  # interleaved, as traffic comes
        serve(calibration, rng, 500 * 3, 0.4, 100_000, 1, tenant=tenant, model=MODEL)
        serve(calibration, rng, 500, 0.4, 100_000, 1, tenant=tenant, model=OTHER)
    on_model = calibration.expected_output(MODEL, None, tenant)
    elsewhere = calibration.expected_output(OTHER, None, tenant)
    assert on_model > 2 * elsewhere
    assert abs(elsewhere - 500) / 500 < 0.35
