"""Expected answer length per tenant: who asks decides whether per-token or flat pricing is cheaper."""

from __future__ import annotations

import uuid
from dataclasses import replace

from service.routing.estimate import TENANT_MIN_SAMPLES, TENANT_SLOTS, Calibration

from .test_planner_examples import KIMI, body, names, plan_of
from .world import default_world

GLM = "zai-org/GLM-4.7"
TYPICAL = 500
LONG_ANSWERS = 4_000  # Kimi K2.5 on Baseten: 4,000 tokens at $3/M is $0.012, above xpay's flat $0.01
SHORT_ANSWERS = 40


def teach(calibration: Calibration, tenant, completion_tokens: int, times: int = TENANT_MIN_SAMPLES,
          model: str = KIMI) -> None:
    for _ in range(times):
        calibration.observe(model, 500, 500, completion_tokens, tenant=tenant)


def learned(tenant_slots: int = TENANT_SLOTS) -> Calibration:
    calibration = Calibration(tenant_slots)
    for model in (KIMI, GLM):
        teach(calibration, None, TYPICAL, times=20, model=model)  # the models' own averages first
    return calibration


def test_a_tenant_with_enough_answers_gets_its_own_expectation_on_every_model():
    calibration = learned()
    writer, chatter, newcomer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    teach(calibration, writer, LONG_ANSWERS)
    teach(calibration, chatter, SHORT_ANSWERS)
    teach(calibration, newcomer, LONG_ANSWERS, times=TENANT_MIN_SAMPLES - 1)
    model_level = calibration.expected_output(KIMI, None)
    assert calibration.expected_output(KIMI, None, writer) > 3 * model_level
    assert calibration.expected_output(KIMI, None, chatter) < model_level / 3
    assert calibration.expected_output(KIMI, None, newcomer) == model_level  # too few of its own yet
    assert 90 <= calibration.expected_output(KIMI, 100, writer) <= 100  # never above what was asked for
    # Long on Kimi, long on GLM too: the tenant's ratio travels across models.
    assert calibration.expected_output(GLM, None, writer) > 3 * calibration.expected_output(GLM, None)


def test_a_fresh_model_teaches_no_tenant_ratio():
    calibration = Calibration()
    writer = uuid.uuid4()
    teach(calibration, writer, LONG_ANSWERS, times=TENANT_MIN_SAMPLES + 3, model=KIMI)
    # The first answers only set the model's own average; later ones compare with it.
    assert calibration.expected_output(KIMI, None, writer) == calibration.expected_output(KIMI, None)


def test_the_tenant_memory_is_bounded_and_forgets_the_least_recently_seen():
    calibration = learned(tenant_slots=2)
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    teach(calibration, first, LONG_ANSWERS)
    teach(calibration, second, LONG_ANSWERS)
    teach(calibration, first, LONG_ANSWERS, times=1)  # seen again: now the most recent
    teach(calibration, third, LONG_ANSWERS)
    model_level = calibration.expected_output(KIMI, None)
    assert calibration.expected_output(KIMI, None, first) > model_level
    assert calibration.expected_output(KIMI, None, third) > model_level
    assert calibration.expected_output(KIMI, None, second) == model_level  # forgotten


def test_the_plan_follows_the_tenant_long_answers_go_flat_short_ones_per_token():
    world = default_world()
    world.calibration = learned()
    writer, chatter = uuid.uuid4(), uuid.uuid4()
    teach(world.calibration, writer, LONG_ANSWERS)
    teach(world.calibration, chatter, SHORT_ANSWERS)
    request = body(KIMI, provider={"only": ["baseten", "xpay"]})

    world.policy = replace(world.policy, tenant=writer)
    assert names(plan_of(request, world))[0] == f"xpay:{KIMI}"
    world.policy = replace(world.policy, tenant=chatter)
    assert names(plan_of(request, world))[0] == f"baseten:{KIMI}"
