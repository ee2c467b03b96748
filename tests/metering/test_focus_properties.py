"""Properties of the FOCUS export over random ledgers in real Postgres, and the FinOps Foundation's validator.

Each example writes a fresh tenant's random rows (all front ends, markups, estimates, tags,
projects, price versions recorded or not, instants at and beyond the month's edges) and exports
that tenant's month: the billed total equals the ledger's to 1E-10, per group too, the file obeys
the FOCUS rules, and a second export is the same bytes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.catalog.loader import load_catalog
from service.metering.events import UsageEvent
from service.metering.focus import focus_export
from service.metering.focus_skus import PriceLookup
from service.metering.ledger import write_batch
from tests.metering.focus_rules import check_csv
from tests.metering.focus_seed import PERIOD, focus

MONTH = date(2022, 3, 1)
START, END = datetime(2022, 3, 1, tzinfo=UTC), datetime(2022, 4, 1, tzinfo=UTC)
MODELS = ("openai/gpt-oss-120b", "zai-org/GLM-4.6", "moonshotai/Kimi-K2.5", "nobody/unpriced")
PROJECTS = (None, uuid.UUID(int=7), uuid.UUID(int=8))

row = st.fixed_dictionaries({
    "front_end": st.sampled_from(("baseten", "xpay", "orthogonal")),
    "model": st.sampled_from(MODELS),
    "offset": st.one_of(st.integers(0, 31 * 86_400_000_000 - 1), st.sampled_from((-1, 31 * 86_400_000_000))),
    "prompt": st.integers(0, 200_000),
    "cached": st.integers(0, 250_000),  # may exceed the prompt: the price clamps it
    "completion": st.integers(0, 50_000),
    "provider": st.integers(0, 10**10).map(lambda n: Decimal(n).scaleb(-10)),
    "markup": st.sampled_from((Decimal(0), Decimal("0.2"), Decimal("0.333333"))),
    "estimated": st.booleans(),
    "source": st.sampled_from(("computed", "receipt", "quote", "envelope", "estimated")),
    "status": st.sampled_from(("ok", "ok", "error", "cancelled")),
    "tags": st.lists(st.sampled_from(("a", "b", "c")), max_size=3).map(tuple),
    "project": st.sampled_from(PROJECTS),
    "recorded": st.booleans(),
})


def _events(tenant: uuid.UUID, rows: list[dict], version: str) -> list[UsageEvent]:
    out = []
    for n, r in enumerate(rows):
        at = START + timedelta(microseconds=r["offset"])
        out.append(UsageEvent(
            request_id=f"prop_{tenant.hex[:12]}_{n}", attempt=1, tenant_id=tenant, key_id=None,
            requested_model=r["model"], served_model=r["model"], front_end=r["front_end"],
            route=f"{r['front_end']}:{r['model']}", status=r["status"], error_code=None, http_status=200,
            stream=False, client_disconnected=False, prompt_tokens=r["prompt"], cached_tokens=r["cached"],
            completion_tokens=r["completion"], reasoning_tokens=0, provider_cost_usd=r["provider"],
            billed_usd=(r["provider"] * (1 + r["markup"])).quantize(Decimal("1E-10")),
            price_version=version if r["recorded"] else f"unrecorded-{n}", cost_source=r["source"],
            estimated=r["estimated"], upstream_request_id=None, started_at=at, first_token_at=None,
            ended_at=at, project_id=r["project"], tags=r["tags"]))
    return out


async def _export(url: str, tenant: uuid.UUID, granularity: str) -> bytes:
    conn = await asyncpg.connect(url)
    try:
        chunks = [c async for c in focus_export(conn, MONTH, "csv", granularity, PriceLookup(load_catalog()),
                                                tenant_id=tenant, batch=7)]
    finally:
        await conn.close()
    return b"".join(chunks)


async def _write(url: str, events: list[UsageEvent]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await write_batch(conn, events)
    finally:
        await conn.close()


@given(rows=st.lists(row, min_size=1, max_size=30), granularity=st.sampled_from(("day", "hour")))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_totals_match_the_ledger_for_random_usage(database_url, rows, granularity):
    import csv
    import io

    tenant = uuid.uuid4()
    events = _events(tenant, rows, load_catalog().version)
    asyncio.run(_write(database_url, events))
    inside = [e for e in events if START <= e.started_at < END]
    text = asyncio.run(_export(database_url, tenant, granularity)).decode()
    out = list(csv.DictReader(io.StringIO(text)))

    assert sum((Decimal(r["BilledCost"]) for r in out), Decimal(0)) == sum((e.billed_usd for e in inside), Decimal(0))
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    expected: dict[tuple, Decimal] = defaultdict(Decimal)
    for e in inside:
        bucket = START + (e.started_at - START) // step * step
        expected[(e.served_model, e.front_end, bucket.strftime("%Y-%m-%dT%H:%M:%SZ"))] += e.billed_usd
    got: dict[tuple, Decimal] = defaultdict(Decimal)
    for r in out:
        got[(r["x_Model"], r["x_FrontEnd"], r["ChargePeriodStart"])] += Decimal(r["BilledCost"])
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
    assert all(r["SubAccountId"] == str(tenant) for r in out)
    assert check_csv(text) == []
    assert asyncio.run(_export(database_url, tenant, granularity)).decode() == text


# --- the FinOps Foundation's validator ---------------------------------------------------------------

# focus-validator (PyPI) checks FOCUS 1.2 only from version 2, which needs Python 3.12; this project
# runs 3.11, so the test uses a validator installed in a separate environment when one is named:
#   FOCUS_VALIDATOR=/path/to/venv/bin/focus-validator
VALIDATOR = os.environ.get("FOCUS_VALIDATOR")
CRITERIA = ("USAGE_MEASUREMENT_SUPPORTED,SUB_ACCOUNT_SUPPORTED,TAGGING_SUPPORTED,PUBLIC_PRICE_LIST_SUPPORTED,"
            "UNIT_PRICING_SUPPORTED,MULTIPLE_PRICING_CATEGORIES_SUPPORTED,ACCOUNT_NAMING_SUPPORTED")
# Failures the validator (2.2.1, model 1.2.0.1) reports that the specification does not make:
#  - it applies a rule with several applicability criteria when ANY holds, where the spec says all:
#    PricingCurrency* columns are required only with virtual currency or a second currency, and
#    Switchyard prices and bills in USD alone;
#  - the condition of ConsumedQuantity-C-005-C reads CommitmentDiscountStatus, a column present only
#    where commitment discounts exist, so the rule and its parents fail on any dataset without one;
#  - InvoiceId-C-005-C is one branch of the OR InvoiceId-C-003-C, which passes (no invoice: null).
KNOWN_FALSE = ("PricingCurrency", "CostAndUsage-D-046-C", "CostAndUsage-D-047-C", "CostAndUsage-D-048-C",
               "CostAndUsage-D-050-C", "CostAndUsage-D-051-C", "CostAndUsage-D-052-C", "CostAndUsage-D-054-C",
               "CostAndUsage-D-055-C", "CostAndUsage-D-056-C", "ConsumedQuantity-C-000-C",
               "ConsumedQuantity-C-003-C", "ConsumedQuantity-C-004-C", "ConsumedQuantity-C-005-C",
               "ConsumedQuantity-C-006-C", "InvoiceId-C-005-C")


@pytest.mark.skipif(not VALIDATOR, reason="set FOCUS_VALIDATOR to a focus-validator>=2 executable")
@pytest.mark.parametrize(("fmt", "granularity"), [("csv", "hour"), ("parquet", "day")])
def test_the_finops_foundation_validator_accepts_the_export(admin, focus_ledger, tmp_path, fmt, granularity):
    path = tmp_path / f"focus.{fmt}"
    path.write_bytes(focus(admin, "/admin/billing/focus", fmt, granularity, PERIOD).content)
    # It reads its currency list relative to the working directory: run it beside its package.
    python = Path(VALIDATOR).with_name("python")
    where = "import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))"
    home = subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.strip()
    run = subprocess.run([VALIDATOR, "--data-file", str(path), "--validate-version", "1.2", "--block-download",
                          "--applicability-criteria", CRITERIA], cwd=home, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    summary = next(line for line in lines if line.startswith("Total:"))
    failed = [line.split()[1].rstrip(":") for line in lines if line.startswith("❌")]
    unexpected = [rule for rule in failed if not rule.startswith(KNOWN_FALSE)]
    assert unexpected == [], summary
    passed = {line.split()[1].rstrip(":") for line in lines if line.startswith("✅")}
    for rule in ("ListCost-C-009-C", "ListUnitPrice-C-010-C", "SkuPriceId-C-008-M", "BilledCost-C-005-C",
                 "Tags-C-001-M", "ServiceSubcategory-C-004-M", "ChargePeriodStart-C-002-M", "PricingUnit-C-003-O"):
        assert rule in passed, rule
