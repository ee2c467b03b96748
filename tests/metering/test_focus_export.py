"""The FOCUS 1.2 export against real Postgres over HTTP and the CLI: the known ledger of May 2023
(tests/metering/focus_seed.py) row by row, totals, formats, determinism, scoping and the FOCUS rules."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.cli import main
from service.metering.focus_format import COLUMN_NAMES
from tests.metering.focus_rules import check_csv, check_parquet
from tests.metering.focus_seed import MONEY, PERIOD, csv_rows, focus
from tests.support import fetch

_focus, _csv_rows = focus, csv_rows


def _ledger_billed(database_url: str, tenants: set[str], month: date = date(2023, 5, 1)) -> Decimal:
    end = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    rows = asyncio.run(fetch(database_url, "SELECT COALESCE(sum(billed_usd), 0) AS s FROM usage_events"
                             " WHERE tenant_id = ANY($1::uuid[]) AND started_at >= $2 AND started_at < $3",
                             list(tenants), datetime(month.year, month.month, 1, tzinfo=UTC),
                             datetime(end.year, end.month, 1, tzinfo=UTC)))
    return rows[0]["s"]


def test_hourly_rows_of_a_price_change_a_project_and_tags(admin, focus_ledger):
    rows = _csv_rows(_focus(admin, "/admin/billing/focus", granularity="hour").text, {str(focus_ledger.acme.tenant_id)})
    hour = [r for r in rows if r["ChargePeriodStart"] == "2023-05-03T10:00:00Z"]
    got = [(r["SkuPriceId"], r["ConsumedQuantity"], r["PricingQuantity"], r["ListUnitPrice"], r["ListCost"],
            r["BilledCost"]) for r in hour]
    sku = "baseten/zai-org/GLM-4.6"
    # The billed amount of each price version's group split by list cost (0.0090 = 0.00375 + 0.00025
    # + 0.005 and 0.006875 = 0.004375 + 0.0025); the same output price in both versions is one row.
    assert got == [
        (f"{sku}/input@0.5", "6000.0", "0.0060000000", "0.5000000000", "0.0030000000000000", "0.0037500000"),
        (f"{sku}/input@0.7", "5000.0", "0.0050000000", "0.7000000000", "0.0035000000000000", "0.0043750000"),
        (f"{sku}/cached_input@0.05", "4000.0", "0.0040000000", "0.0500000000", "0.0002000000000000",
         "0.0002500000"),
        (f"{sku}/output@2", "3000.0", "0.0030000000", "2.0000000000", "0.0060000000000000", "0.0075000000"),
    ]
    first = hour[0]
    assert json.loads(first["Tags"]) == {"batch": True, "nightly": True, "switchyard/project": "search"}
    assert (first["x_ProjectId"], first["x_ProjectName"]) == (str(focus_ledger.project_id), "search")
    assert (first["SubAccountName"], first["ChargePeriodEnd"]) == (focus_ledger.acme.tenant_name,
                                                                   "2023-05-03T11:00:00Z")
    assert (first["BillingPeriodStart"], first["BillingPeriodEnd"]) == ("2023-05-01T00:00:00Z", "2023-06-01T00:00:00Z")
    assert (first["ServiceName"], first["ServiceCategory"], first["ServiceSubcategory"]) == (
        "Baseten Model APIs", "AI and Machine Learning", "Generative AI")
    assert (first["ProviderName"], first["InvoiceIssuerName"], first["PublisherName"]) == (
        "Switchyard", "Switchyard", "Baseten")
    assert all(r["BilledCost"] == r["EffectiveCost"] == r["ContractedCost"] for r in rows)
    assert all(r["PricingUnit"] == "1000000 Tokens" and r["ConsumedUnit"] == "Tokens" for r in hour)


def test_flat_fee_and_quoted_calls_are_per_request_skus(admin, focus_ledger):
    rows = _csv_rows(_focus(admin, "/admin/billing/focus").text, {str(focus_ledger.acme.tenant_id)})
    calls = {(r["x_FrontEnd"], r["x_Estimated"]): r for r in rows if r["x_TokenKind"] == "request"}
    xpay = calls[("xpay", "false")]
    # Two calls consumed, one charged: the list price is the published flat fee per charged call.
    assert (xpay["ConsumedQuantity"], xpay["ConsumedUnit"], xpay["PricingQuantity"], xpay["PricingUnit"]) == (
        "2.0", "Requests", "1.0000000000", "Requests")
    assert (xpay["ListUnitPrice"], xpay["ListCost"], xpay["BilledCost"], xpay["PricingCategory"]) == (
        "0.0100000000", "0.0100000000000000", "0.0125000000", "Standard")
    assert xpay["SkuId"] == "xpay/zai-org/GLM-4.6/request" and xpay["SkuMeter"] == "Requests"
    quoted, estimated = calls[("orthogonal", "false")], calls[("orthogonal", "true")]
    assert (quoted["PricingUnit"], quoted["PricingQuantity"], quoted["ListUnitPrice"], quoted["ListCost"]) == (
        "Dollars", "0.0042000000", "1.0000000000", "0.0042000000000000")
    assert (quoted["BilledCost"], quoted["PricingCategory"], quoted["SkuPriceId"]) == (
        "0.0052500000", "Dynamic", "orthogonal/zai-org/GLM-4.6/request@as-charged")
    assert (estimated["BilledCost"], estimated["ConsumedQuantity"]) == ("0.0037500000", "1.0")
    unknown = calls[("baseten", "false")]  # a model no catalog prices: billed as charged, never dropped
    assert (unknown["x_Model"], unknown["BilledCost"], unknown["PricingUnit"]) == (
        "acme/not-in-any-catalog", "0.0025000000", "Dollars")


def test_estimated_tokens_and_unrecorded_versions(admin, focus_ledger):
    rows = _csv_rows(_focus(admin, "/admin/billing/focus", granularity="hour").text,
                     {str(focus_ledger.beta.tenant_id)})
    got = [(r["ChargePeriodStart"], r["x_TokenKind"], r["x_Estimated"], r["ListUnitPrice"], r["BilledCost"])
           for r in rows]
    # The unrecorded version is priced at the running catalog; the month's last second is in, the
    # rows just outside it are not.
    assert got == [
        ("2023-05-31T23:00:00Z", "input", "false", "0.1000000000", "0.0001000000"),
        ("2023-05-31T23:00:00Z", "output", "false", "0.5000000000", "0.0000500000"),
        ("2023-05-31T23:00:00Z", "input", "true", "0.1000000000", "0.0003000000"),
        ("2023-05-31T23:00:00Z", "output", "true", "0.5000000000", "0.0002500000"),
    ]
    assert all(r["Tags"] == "" and r["x_ProjectId"] == "" for r in rows)


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_totals_equal_the_ledger_to_the_last_decimal(admin, focus_ledger, database_url, granularity):
    expected = _ledger_billed(database_url, focus_ledger.tenant_ids)
    assert expected == Decimal("0.0405750000")  # the seeded rows, stored once despite the replay
    text = _focus(admin, "/admin/billing/focus", granularity=granularity).text
    rows = _csv_rows(text, focus_ledger.tenant_ids)
    for column in ("BilledCost", "EffectiveCost", "ContractedCost"):
        assert sum(Decimal(r[column]) for r in rows) == expected
    parquet = pq.read_table(io.BytesIO(_focus(admin, "/admin/billing/focus", "parquet", granularity).content))
    ours = [r for r in parquet.to_pylist() if r["SubAccountId"] in focus_ledger.tenant_ids]
    assert sum(r["BilledCost"] for r in ours) == expected


def test_parquet_carries_the_same_rows_as_csv_in_decimal128(admin, focus_ledger):
    text = _focus(admin, "/admin/billing/focus", granularity="hour").text
    table = pq.read_table(io.BytesIO(_focus(admin, "/admin/billing/focus", "parquet", "hour").content))
    assert tuple(table.schema.names) == COLUMN_NAMES
    for name in (*MONEY, "ListUnitPrice", "PricingQuantity", "ConsumedQuantity"):
        assert pa.types.is_decimal128(table.schema.field(name).type), name
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    from_csv = list(csv.DictReader(io.StringIO(text)))
    from_parquet = table.to_pylist()
    assert len(from_csv) == len(from_parquet)
    for c, p in zip(from_csv, from_parquet, strict=True):
        for name in COLUMN_NAMES:
            value = p[name]
            if isinstance(value, datetime):
                value = value.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif value is None:
                value = ""
            assert c[name] == str(value), name


@pytest.mark.parametrize(("fmt", "granularity"), [("csv", "day"), ("parquet", "hour")])
def test_a_rerun_is_byte_identical(admin, focus_ledger, fmt, granularity):
    first = _focus(admin, "/admin/billing/focus", fmt, granularity).content
    assert first == _focus(admin, "/admin/billing/focus", fmt, granularity).content


def test_the_files_follow_the_focus_column_rules(admin, focus_ledger, ledger):
    for period in (PERIOD, "2024-02"):
        for granularity in ("day", "hour"):
            assert check_csv(_focus(admin, "/admin/billing/focus", "csv", granularity, period).text) == []
            assert check_parquet(_focus(admin, "/admin/billing/focus", "parquet", granularity, period).content) == []


def test_the_rules_catch_what_they_encode():
    """The checker is not vacuous: each broken file below is reported."""
    header = ",".join(COLUMN_NAMES)
    good = ("0.1,sw,Switchyard,USD,2023-06-01T00:00:00Z,2023-05-01T00:00:00Z,Usage,,d,Usage-Based,"
            "2023-05-02T00:00:00Z,2023-05-01T00:00:00Z,1.0,Requests,0.1,0.1,,Switchyard,0.01,0.01,Standard,1,"
            "Requests,Switchyard,Baseten,AI and Machine Learning,S,Generative AI,s,Requests,,s@1,t,T,,false,"
            "xpay,m,,,request")
    assert check_csv(f"{header}\n{good}\n") == []
    broken = {
        "ListCost": ("0.01,0.01,Standard,1,", "0.02,0.01,Standard,1,"),
        "currency": (",USD,", ",usd,"),
        "datetime": ("2023-05-02T00:00:00Z", "2023-05-02 00:00:00"),
        "category": ("AI and Machine Learning", "AI"),
        "tags": (",t,T,,", ',t,T,"{""a"": [1]}",'),
        "unit": ("1,Requests,Switchyard", "1,requests!,Switchyard"),
    }
    for what, (old, new) in broken.items():
        assert check_csv(f"{header}\n{good.replace(old, new, 1)}\n"), what
    assert check_csv(header.replace("BilledCost,", "") + "\n")  # a mandatory column missing


def test_a_tenant_gets_only_its_own_rows(gateway, admin, focus_ledger):
    every = _csv_rows(_focus(admin, "/admin/billing/focus").text)
    for tenant in (focus_ledger.acme, focus_ledger.beta):
        headers = {"authorization": f"Bearer {tenant.key}"}
        with httpx.Client(base_url=gateway.url, headers=headers, timeout=20) as client:
            r = _focus(client, "/v1/usage/focus")
            assert r.headers["content-type"].startswith("text/csv")
            assert 'filename="focus-2023-05-day.csv"' in r.headers["content-disposition"]
            own = _csv_rows(r.text)
            assert own and own == [row for row in every if row["SubAccountId"] == str(tenant.tenant_id)]
            parquet = _focus(client, "/v1/usage/focus", "parquet", "hour")
            assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
            ids = set(pq.read_table(io.BytesIO(parquet.content)).column("SubAccountId").to_pylist())
            assert ids == {str(tenant.tenant_id)}


def test_the_tenant_endpoint_needs_a_key(anon):
    r = anon.get("/v1/usage/focus", params={"period": PERIOD})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("params", "param"), [
    ({}, "period"), ({"period": "2023-5"}, "period"), ({"period": PERIOD, "format": "jsonl"}, "format"),
    ({"period": PERIOD, "granularity": "minute"}, "granularity"),
])
def test_bad_parameters_are_400_before_any_byte(admin, params, param):
    r = admin.get("/admin/billing/focus", params=params)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_an_empty_month_is_a_header(admin):
    assert _focus(admin, "/admin/billing/focus", period="1999-01").text == ",".join(COLUMN_NAMES) + "\n"
    assert pq.read_table(io.BytesIO(_focus(admin, "/admin/billing/focus", "parquet", period="1999-01").content)
                         ).num_rows == 0


@pytest.mark.parametrize(("fmt", "granularity"), [("csv", "hour"), ("parquet", "day")])
def test_cli_writes_the_bytes_the_endpoint_serves(cli_env, admin, focus_ledger, tmp_path, fmt, granularity):
    out = tmp_path / f"focus.{fmt}"
    main(["export", "--focus", "--period", PERIOD, "--format", fmt, "--granularity", granularity,
          "--output", str(out)])
    assert out.read_bytes() == _focus(admin, "/admin/billing/focus", fmt, granularity).content


@pytest.mark.parametrize("args", [
    ["export", "--period", PERIOD, "--format", "parquet"],
    ["export", "--period", PERIOD, "--granularity", "hour"],
    ["export", "--focus", "--period", PERIOD, "--format", "jsonl"],
])
def test_cli_rejects_options_of_the_other_export(cli_env, capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("switchyard: ")
