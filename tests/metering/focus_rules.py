"""The FOCUS 1.2 column rules, encoded for every column the export writes, to check its files.

Taken from the FOCUS 1.2 specification's column definitions and attributes (column naming,
numeric, date/time, currency, unit and key-value formats, null handling), with the
applicability Switchyard declares: usage is measured, tenants are sub accounts, requests carry
tags, the catalog is a published price list with unit prices, and there is more than one pricing
category (Standard, Dynamic). No commitments, capacity reservations, regions, resources, virtual
currency or second currency: the columns those govern are not expected.

check_csv / check_parquet return the violations found, as readable strings (empty: compliant).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Spec:
    type: str  # Decimal | DateTime | String | KeyValue
    nullable: bool
    level: str  # Mandatory | Conditional | Recommended
    allowed: tuple[str, ...] | None = None
    fmt: str | None = None  # Currency | Unit


CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
SERVICE_CATEGORIES = (
    "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
    "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
    "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
)
# The subcategories of "AI and Machine Learning" (each subcategory has exactly one parent).
AI_SUBCATEGORIES = ("AI Platforms", "Bots", "Generative AI", "Machine Learning", "Natural Language Processing",
                    "Other (AI and Machine Learning)")

SPECS: dict[str, Spec] = {
    "BilledCost": Spec("Decimal", False, "Mandatory"),
    "BillingAccountId": Spec("String", False, "Mandatory"),
    "BillingAccountName": Spec("String", False, "Mandatory"),  # not null: accounts have names here
    "BillingCurrency": Spec("String", False, "Mandatory", fmt="Currency"),
    "BillingPeriodEnd": Spec("DateTime", False, "Mandatory"),
    "BillingPeriodStart": Spec("DateTime", False, "Mandatory"),
    "ChargeCategory": Spec("String", False, "Mandatory", CHARGE_CATEGORIES),
    "ChargeClass": Spec("String", True, "Mandatory", ("Correction",)),
    "ChargeDescription": Spec("String", True, "Mandatory"),
    "ChargeFrequency": Spec("String", False, "Recommended", ("One-Time", "Recurring", "Usage-Based")),
    "ChargePeriodEnd": Spec("DateTime", False, "Mandatory"),
    "ChargePeriodStart": Spec("DateTime", False, "Mandatory"),
    "ConsumedQuantity": Spec("Decimal", True, "Conditional"),
    "ConsumedUnit": Spec("String", True, "Conditional", fmt="Unit"),
    "ContractedCost": Spec("Decimal", False, "Mandatory"),
    "EffectiveCost": Spec("Decimal", False, "Mandatory"),
    "InvoiceId": Spec("String", True, "Recommended"),
    "InvoiceIssuerName": Spec("String", False, "Mandatory"),
    "ListCost": Spec("Decimal", False, "Mandatory"),
    "ListUnitPrice": Spec("Decimal", True, "Conditional"),
    "PricingCategory": Spec("String", True, "Conditional", ("Standard", "Dynamic", "Committed", "Other")),
    "PricingQuantity": Spec("Decimal", True, "Mandatory"),
    "PricingUnit": Spec("String", True, "Mandatory", fmt="Unit"),
    "ProviderName": Spec("String", False, "Mandatory"),
    "PublisherName": Spec("String", False, "Mandatory"),
    "ServiceCategory": Spec("String", False, "Mandatory", SERVICE_CATEGORIES),
    "ServiceName": Spec("String", False, "Mandatory"),
    "ServiceSubcategory": Spec("String", False, "Recommended", AI_SUBCATEGORIES),
    "SkuId": Spec("String", True, "Conditional"),
    "SkuMeter": Spec("String", True, "Conditional"),
    "SkuPriceDetails": Spec("KeyValue", True, "Conditional"),
    "SkuPriceId": Spec("String", True, "Conditional"),
    "SubAccountId": Spec("String", True, "Conditional"),
    "SubAccountName": Spec("String", True, "Conditional"),
    "Tags": Spec("KeyValue", True, "Conditional"),
}
# Conditional columns whose condition holds for Switchyard, so they must be present.
REQUIRED = tuple(name for name, s in SPECS.items() if s.level in ("Mandatory", "Conditional"))

_NUMERIC = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE]-?[0-9]+)?$")
_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
_CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "CNY", "INR"}
_PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_TIME = "Year|Month|Day|Hour|Minute|Second"
_TIMES = "Years|Months|Days|Hours|Minutes|Seconds"
_SIZE = "b|Kb|Mb|Gb|Tb|Pb|Eb|B|KB|MB|GB|TB|PB|EB|Kib|Mib|Gib|Tib|Pib|Eib|KiB|MiB|GiB|TiB|PiB|EiB"
_COUNT = r"[A-Za-z][A-Za-z0-9]*(?: [A-Za-z][A-Za-z0-9]*)*"
_UNIT = re.compile(
    rf"^(?:(?:{_SIZE}|{_TIME}|{_TIMES}|{_COUNT})"  # a unit
    rf"|(?:{_SIZE}|{_COUNT})-(?:{_TIMES})"  # unit-time: GB-Hours
    rf"|(?:{_SIZE}|{_COUNT}|{_TIMES})/(?:{_TIME})"  # unit per time: Requests/Second
    rf"|[0-9]+ (?:{_SIZE}|{_TIME}|{_TIMES}|{_COUNT})"  # quantity unit: 1000000 Tokens
    rf"|(?:{_SIZE}|{_COUNT}|{_TIMES})/[0-9]+ (?:{_TIMES}))$"
)
PROVIDER_TAG_PREFIX = "switchyard/"


def _key_value(text: str) -> tuple[dict[str, Any] | None, str | None]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    try:
        value = json.loads(text, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        return None, f"not a JSON object with unique keys ({exc})"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    if any(isinstance(v, (dict, list)) for v in value.values()):
        return None, "a value is an object or an array"
    return value, None


def _columns(names: list[str]) -> list[str]:
    out = [f"required column {c} is missing" for c in REQUIRED if c not in names]
    custom = [i for i, n in enumerate(names) if n.startswith("x_")]
    for n in names:
        if not n.startswith("x_") and not (_PASCAL.match(n) and n in SPECS):
            out.append(f"column {n!r} is neither a FOCUS column nor prefixed x_")
        if len(n) > 50:
            out.append(f"column {n!r} is longer than 50 characters")
    if custom and any(not n.startswith("x_") for n in names[custom[0]:]):
        out.append("custom columns are mixed in among FOCUS columns")
    return out


def check_csv(text: str) -> list[str]:
    reader = csv.reader(io.StringIO(text))
    names = next(reader)
    out = _columns(names)
    rows: list[dict[str, Any]] = []
    for n, raw in enumerate(reader, start=2):
        if len(raw) != len(names):
            out.append(f"line {n}: {len(raw)} fields, header has {len(names)}")
            continue
        row: dict[str, Any] = {}
        for name, value in zip(names, raw, strict=True):
            spec = SPECS.get(name)
            if spec is None or value == "":
                row[name] = None
                continue
            if spec.type == "Decimal":
                if not _NUMERIC.match(value):
                    out.append(f"line {n}: {name} {value!r} is not in FOCUS numeric format")
                    row[name] = None
                    continue
                row[name] = Decimal(value)
            elif spec.type == "DateTime":
                if not _DATETIME.match(value):
                    out.append(f"line {n}: {name} {value!r} is not YYYY-MM-DDTHH:mm:ssZ")
                    row[name] = None
                    continue
                row[name] = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            else:
                row[name] = value
        rows.append(row)
    return out + check_rows(rows, names)


def check_parquet(data: bytes) -> list[str]:
    table = pq.read_table(io.BytesIO(data))
    names = table.schema.names
    out = _columns(names)
    for field in table.schema:
        spec = SPECS.get(field.name)
        if spec is None:
            continue
        if spec.type == "Decimal" and not pa.types.is_decimal(field.type):
            out.append(f"{field.name} is {field.type}, not a decimal")
        if spec.type == "DateTime" and not (pa.types.is_timestamp(field.type) and field.type.tz == "UTC"):
            out.append(f"{field.name} is {field.type}, not a UTC timestamp")
        if spec.type in ("String", "KeyValue") and not pa.types.is_string(field.type):
            out.append(f"{field.name} is {field.type}, not a string")
        if not spec.nullable and field.nullable:
            out.append(f"{field.name} may not be null but its Parquet field is nullable")
    rows = table.to_pylist()
    for n, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, str) and value == "":
                out.append(f"row {n}: {name} is an empty string (use null)")
    return out + check_rows(rows, names)


def _is(row: dict[str, Any], name: str, value: str) -> bool:
    return row.get(name) == value


def check_rows(rows: list[dict[str, Any]], names: list[str]) -> list[str]:
    """Value rules: nullability, allowed values, formats, and the rules between columns."""
    out: list[str] = []
    sku_of_price: dict[str, set[str]] = {}
    category_of_service: dict[str, set[str]] = {}
    for n, row in enumerate(rows):
        where = f"row {n}"
        for name in names:
            spec = SPECS.get(name)
            if spec is None:
                continue
            value = row.get(name)
            if value is None:
                if not spec.nullable:
                    out.append(f"{where}: {name} is null")
                continue
            if spec.allowed is not None and value not in spec.allowed:
                out.append(f"{where}: {name} {value!r} is not an allowed value")
            if spec.type == "String" and not value.strip():
                out.append(f"{where}: {name} is blank")
            if spec.type == "KeyValue":
                _, problem = _key_value(value)
                if problem:
                    out.append(f"{where}: {name} {problem}")
            if spec.fmt == "Currency" and (not re.fullmatch(r"[A-Z]{3}", value) or value not in _CURRENCIES):
                out.append(f"{where}: {name} {value!r} is not an ISO 4217 national currency")
            if spec.fmt == "Unit" and not _UNIT.match(value):
                out.append(f"{where}: {name} {value!r} does not follow the unit format")
        out.extend(f"{where}: {p}" for p in _row_rules(row))
        if row.get("SkuPriceId") is not None:
            sku_of_price.setdefault(row["SkuPriceId"], set()).add(row.get("SkuId"))
        category_of_service.setdefault(row["ServiceName"], set()).add(row["ServiceCategory"])
    out += [f"SkuPriceId {p} has {len(s)} parent SkuIds" for p, s in sku_of_price.items() if len(s) != 1]
    out += [f"ServiceName {s} has {len(c)} ServiceCategory values" for s, c in category_of_service.items()
            if len(c) != 1]
    return out


def _row_rules(row: dict[str, Any]) -> list[str]:
    out: list[str] = []
    usage_like = row.get("ChargeCategory") in ("Usage", "Purchase") and row.get("ChargeClass") != "Correction"
    tax = _is(row, "ChargeCategory", "Tax")
    for name in ("ListUnitPrice", "PricingQuantity", "PricingCategory", "SkuId", "SkuPriceId"):
        if usage_like and row.get(name) is None:
            out.append(f"{name} is null on a Usage/Purchase row")
        if tax and row.get(name) is not None:
            out.append(f"{name} is set on a Tax row")
    if _is(row, "ChargeCategory", "Usage") and row.get("ChargeClass") != "Correction":
        if row.get("ConsumedQuantity") is None:
            out.append("ConsumedQuantity is null on a Usage row")
    elif row.get("ConsumedQuantity") is not None:
        out.append("ConsumedQuantity is set on a row that is not Usage")
    for quantity, unit in (("ConsumedQuantity", "ConsumedUnit"), ("PricingQuantity", "PricingUnit")):
        if (row.get(quantity) is None) != (row.get(unit) is None):
            out.append(f"{unit} must be null exactly when {quantity} is")
    if (row.get("SubAccountId") is None) != (row.get("SubAccountName") is None):
        out.append("SubAccountName must be null exactly when SubAccountId is")
    if row.get("SkuId") is not None and row.get("SkuMeter") is None:
        out.append("SkuMeter is null while SkuId is not")
    if row.get("SkuPriceId") is None and row.get("SkuPriceDetails") is not None:
        out.append("SkuPriceDetails is set while SkuPriceId is null")
    price, quantity = row.get("ListUnitPrice"), row.get("PricingQuantity")
    if price is not None:
        if price < 0:
            out.append("ListUnitPrice is negative")
        if quantity is not None and row.get("ChargeClass") != "Correction" and price * quantity != row["ListCost"]:
            out.append(f"ListUnitPrice x PricingQuantity = {price * quantity} != ListCost {row['ListCost']}")
    if row.get("ProviderName") != row.get("InvoiceIssuerName") and row.get("BilledCost") != 0:
        out.append("BilledCost is not 0 for a charge paid to a third party")
    if _is(row, "ChargeCategory", "Purchase") and _is(row, "ChargeFrequency", "Usage-Based"):
        out.append("a Purchase is Usage-Based")
    start, end = row.get("ChargePeriodStart"), row.get("ChargePeriodEnd")
    b_start, b_end = row.get("BillingPeriodStart"), row.get("BillingPeriodEnd")
    if start is not None and end is not None and not start < end:
        out.append("ChargePeriodStart is not before ChargePeriodEnd")
    if b_start is not None and b_end is not None and not b_start < b_end:
        out.append("BillingPeriodStart is not before BillingPeriodEnd")
    if None not in (start, end, b_start, b_end) and not (b_start <= start and end <= b_end):
        out.append("the charge period is outside the billing period")
    if row.get("ServiceSubcategory") in AI_SUBCATEGORIES and row.get("ServiceCategory") != "AI and Machine Learning":
        out.append("ServiceSubcategory's parent is not the row's ServiceCategory")
    if row.get("Tags") is not None:
        tags, _ = _key_value(row["Tags"])
        out.extend(f"tag {key!r} uses the provider's reserved prefix" for key in tags or {}
                   if key.startswith(PROVIDER_TAG_PREFIX) and key != f"{PROVIDER_TAG_PREFIX}project")
    return out
