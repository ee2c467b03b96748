"""Expected answer lengths loaded from the ledger at start, against a real, migrated Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from service.metering.events import USAGE_COLUMNS, UsageEvent
from service.routing.answer_spread import PRIOR_SIGMA, capped_mean
from service.routing.estimate import PRIOR_OUTPUT, TENANT_MIN_SAMPLES, Calibration
from service.routing.priors import load_output_priors, seed_calibration


def row(model: str, tenant: uuid.UUID, completion: int, *, status: str = "ok", estimated: bool = False,
        age: timedelta = timedelta(hours=1)) -> tuple:
    started = datetime.now(UTC) - age
    return UsageEvent(
        request_id=f"req_{uuid.uuid4().hex}", attempt=1, tenant_id=tenant, key_id=None,
        requested_model=model, served_model=model, front_end="baseten", route=f"baseten:{model}",
        status=status, error_code=None if status == "ok" else "upstream_error", http_status=None,
        stream=False, client_disconnected=False, prompt_tokens=1_000, cached_tokens=0,
        completion_tokens=completion, reasoning_tokens=0, provider_cost_usd=Decimal(0), billed_usd=Decimal(0),
        price_version="test", cost_source="computed", estimated=estimated, upstream_request_id=None,
        started_at=started, first_token_at=None, ended_at=started + timedelta(seconds=2),
    ).record()


async def test_priors_from_recent_served_answers_per_model_and_tenant(database_url):
    # Model names of their own: the session's database is shared with other tests.
    model_a, model_b = f"test/a-{uuid.uuid4().hex[:8]}", f"test/b-{uuid.uuid4().hex[:8]}"
    writer, chatter, quiet = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = (
        [row(model_a, writer, 3_000) for _ in range(10)]
        + [row(model_a, chatter, 100) for _ in range(30)]
        + [row(model_b, writer, 1_200) for _ in range(6)]
        + [row(model_b, chatter, 400) for _ in range(6)]
        + [row(model_a, quiet, 500) for _ in range(2)]
        # None of these count: failed, estimated, or older than the days read.
        + [row(model_a, chatter, 90_000, status="error") for _ in range(5)]
        + [row(model_a, chatter, 90_000, estimated=True) for _ in range(5)]
        + [row(model_b, chatter, 90_000, age=timedelta(days=10)) for _ in range(5)]
    )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table("usage_events", records=rows, columns=list(USAGE_COLUMNS))
        priors = await load_output_priors(conn, days=3)
    finally:
        await conn.close()

    mean_a = (10 * 3_000 + 30 * 100 + 2 * 500) / 42
    mean_b = (6 * 1_200 + 6 * 400) / 12
    assert priors.models[model_a] == (mean_a, 42)
    assert priors.models[model_b] == (mean_b, 12)
    writer_ratio, writer_answers = priors.tenants[writer]
    assert writer_answers == 16
    assert abs(writer_ratio - (10 * 3_000 / mean_a + 6 * 1_200 / mean_b) / 16) < 1e-9
    assert priors.tenants[chatter][0] < 0.2 and writer_ratio > 1.5

    calibration = Calibration()
    assert calibration.expected_output(model_a, None) == PRIOR_OUTPUT
    seed_calibration(calibration, priors)
    assert calibration.expected_output(model_a, None) == int(mean_a)
    assert calibration.expected_output(model_a, None, writer) == int(mean_a * writer_ratio)
    # Never above what was asked for, and below it: the cap cuts the long answers, the short ones end sooner.
    capped = calibration.expected_output(model_b, 500, writer)
    assert capped == round(capped_mean(mean_b * writer_ratio, PRIOR_SIGMA, 500)) and 400 < capped < 500
    # Two answers are too few to judge a tenant by: it gets the model's average.
    assert priors.tenants[quiet][1] < TENANT_MIN_SAMPLES
    assert calibration.expected_output(model_a, None, quiet) == int(mean_a)


def test_seeded_averages_still_follow_live_answers():
    calibration = Calibration()
    calibration.seed({"m": (2_000.0, 10_000)}, {})
    for _ in range(500):
        calibration.observe("m", 1_000, 1_000, 200)
    # The ledger's 10,000 answers count as a few dozen: live traffic moves the average within hundreds.
    assert calibration.expected_output("m", None) < 300


def test_what_a_process_has_learned_is_not_overwritten_by_a_late_seed():
    calibration = Calibration()
    for _ in range(20):
        calibration.observe("m", 1_000, 1_000, 50)
    calibration.seed({"m": (5_000.0, 100)}, {})
    assert calibration.expected_output("m", None) == 50
