"""The billed usage of one month as a FOCUS 1.2 cost and usage dataset (CSV or Parquet).

One row per tenant x project x served model x front end x SKU x charge period (an hour or a
day), where the SKUs of a route are its token kinds (input, cached input, output) or, for a
route charged per call, the call itself. Rows are split further only where one row could not
state its charge truthfully: by tag set (Tags describe the whole row), by list price (a price
change within a period is a new SkuPriceId) and by whether the amounts rest on an estimate.

Who is who: Switchyard is the provider and the invoice issuer (ProviderName, InvoiceIssuerName,
the billing account); each tenant is a sub account; Baseten, which hosts every model, is the
publisher; each front end is a service (ServiceName) in "AI and Machine Learning".

The costs:
  BilledCost      the ledger's billed amounts (markup included, the cost of record of
                  service/metering/pricing.py), split across a group's SKUs in proportion to
                  their list cost (focus_skus.allocate); the sum over any set of rows equals
                  the ledger's billed sum for the same rows exactly, to 1E-10.
  EffectiveCost   = BilledCost: no commitments or prepayments to amortise.
  ContractedCost  = BilledCost: a tenant's contract is the catalog price plus its markup, applied
                  to each attempt's cost of record and rounded per attempt, so no contracted
                  unit price reproduces it; ContractedUnitPrice is therefore not emitted.
  ListCost        ListUnitPrice x PricingQuantity, exactly: the catalog's published price (the
                  one GET /v1/models shows) before the tenant's markup.

Flat-fee and quoted calls (xpay, Orthogonal) are charged per call, not per token, so their
route has one SKU, `<front end>/<model>/request`, consumed in Requests:
  - a flat fee is a unit price per call: PricingUnit Requests, PricingQuantity the calls the
    upstream charged for, ListUnitPrice the published fee, PricingCategory Standard;
  - a quoted call has no unit price (Orthogonal quotes each call), and FOCUS requires a list
    unit price that multiplies out to the list cost: such calls are priced per dollar of their
    upstream charge, PricingUnit Dollars, ListUnitPrice 1, PricingQuantity the sum of those
    charges, PricingCategory Dynamic, SkuPriceId `...@as-charged`. A per-token route's rows that
    were charged but price to nothing at their catalog (a data error) are written the same way,
    so no billed amount is ever dropped.

Tags: user tags are valueless, so each is a key with the value true (FOCUS key-value format);
the key's project is the provider tag `switchyard/project` (a prefix reserved for the
provider). Names (tenant, project) are read when the export runs.

Custom columns, after the FOCUS ones: x_Estimated (the row's amounts rest on an estimate: tokens
the upstream did not report, or a quoted call priced from estimate terms), x_FrontEnd, x_Model,
x_ProjectId, x_ProjectName, x_TokenKind (input, cached_input, output, request).

Consistency: the ledger is read inside one read-only REPEATABLE READ transaction through a
cursor, aggregated by Postgres, so memory holds one group at a time whatever the month's size,
and every row comes from one snapshot. Output is ordered by ids, not names, and encoded
deterministically: re-deriving a closed month gives byte-identical files, as long as the price
versions its rows name are recorded (`switchyard catalog sync`); rows naming an unrecorded
version are priced at the running catalog.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from service.db.pool import Conn
from service.errors import invalid
from service.metering.focus_format import Row, encoder
from service.metering.focus_skus import (
    AS_CHARGED,
    CACHED_INPUT,
    INPUT,
    KINDS,
    METERS,
    OUTPUT,
    GroupSums,
    Line,
    PriceLookup,
    lines_for,
    sku_id,
)

FORMATS = ("csv", "parquet")
GRANULARITIES = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
PROJECT_TAG = "switchyard/project"

_SERVICES = {"baseten": "Baseten Model APIs", "xpay": "Baseten via xpay", "orthogonal": "Baseten via Orthogonal"}
_FRONT_ENDS = {"baseten": "Baseten Model APIs", "xpay": "xpay", "orthogonal": "Orthogonal"}


@dataclass(frozen=True, slots=True)
class Parties:
    """Who provides, publishes and invoices; one billing account for the whole deployment."""

    provider: str = "Switchyard"
    publisher: str = "Baseten"
    billing_account_id: str = "switchyard"
    billing_account_name: str = "Switchyard"


def parse_format(value: str | None) -> str:
    fmt = value or "csv"
    if fmt not in FORMATS:
        raise invalid(f"`format` must be one of {', '.join(FORMATS)}; got {fmt!r}.", "format")
    return fmt


def parse_granularity(value: str | None) -> str:
    granularity = value or "day"
    if granularity not in GRANULARITIES:
        raise invalid(f"`granularity` must be one of {', '.join(GRANULARITIES)}; got {granularity!r}.",
                      "granularity")
    return granularity


def file_name(month: date, granularity: str, fmt: str) -> str:
    return f"focus-{month:%Y-%m}-{granularity}.{fmt}"


_GROUPED = """
WITH rows AS (
    SELECT e.tenant_id, e.project_id, date_trunc($3, e.started_at AT TIME ZONE 'UTC') AS period_start,
           e.served_model, e.front_end,
           ARRAY(SELECT DISTINCT u.tag COLLATE "C" FROM unnest(e.tags) AS u(tag) ORDER BY 1) AS tags,
           (e.estimated OR e.cost_source = 'estimated') AS estimated, e.price_version,
           GREATEST(LEAST(e.cached_tokens, e.prompt_tokens), 0) AS cached, e.prompt_tokens,
           e.completion_tokens, e.provider_cost_usd, e.billed_usd
    FROM usage_events e
    WHERE e.started_at >= $1 AND e.started_at < $2 {tenant_filter}
), grouped AS (
    SELECT tenant_id, project_id, period_start, served_model, front_end, tags, estimated, price_version,
           count(*) AS calls, count(*) FILTER (WHERE provider_cost_usd > 0) AS charged_calls,
           sum(prompt_tokens - cached)::bigint AS input_tokens, sum(cached)::bigint AS cached_tokens,
           sum(completion_tokens)::bigint AS output_tokens, sum(provider_cost_usd) AS provider_usd,
           sum(billed_usd) AS billed_usd
    FROM rows
    GROUP BY tenant_id, project_id, period_start, served_model, front_end, tags, estimated, price_version
)
SELECT g.*, t.name AS tenant_name, p.name AS project_name
FROM grouped g LEFT JOIN tenants t ON t.id = g.tenant_id LEFT JOIN projects p ON p.id = g.project_id
ORDER BY g.tenant_id, g.project_id NULLS FIRST, g.period_start, g.served_model COLLATE "C",
         g.front_end COLLATE "C", g.tags COLLATE "C", g.estimated, g.price_version COLLATE "C"
"""
_ALL_TENANTS = _GROUPED.format(tenant_filter="")
_ONE_TENANT = _GROUPED.format(tenant_filter="AND e.tenant_id = $4")


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def focus_export(conn: Conn, month: date, fmt: str, granularity: str, prices: PriceLookup,
                       *, tenant_id: uuid.UUID | None = None, parties: Parties = Parties(),
                       batch: int = 2000) -> AsyncIterator[bytes]:
    """The month's FOCUS rows, for every tenant or only `tenant_id`'s, as encoded chunks.

    `conn` is a connection (not a pool): the cursor needs one transaction for the whole read.
    """
    out = encoder(fmt)
    start, end = _midnight(month), _midnight(_next_month(month))
    writer = _RowWriter(parties, start, end, GRANULARITIES[granularity])
    query, args = (_ALL_TENANTS, [start, end, granularity]) if tenant_id is None else (
        _ONE_TENANT, [start, end, granularity, tenant_id])
    yield out.header()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        pending: list[Row] = []
        async for rec in conn.cursor(query, *args, prefetch=batch):
            version = rec["price_version"]
            if not prices.known(version):
                # In the same snapshot as the ledger rows, between two fetches of the cursor.
                raw = await conn.fetchval("SELECT catalog FROM price_versions WHERE version = $1", version)
                prices.add_recorded(version, raw)
            pending.extend(writer.add(rec, prices))
            if len(pending) >= batch:
                yield out.rows(pending)
                pending = []
        pending.extend(writer.flush())
        if pending:
            yield out.rows(pending)
    yield out.close()


class _RowWriter:
    """Merges consecutive groups (sorted by their row key) into FOCUS rows, one key at a time."""

    def __init__(self, parties: Parties, start: datetime, end: datetime, step: timedelta) -> None:
        self.parties = parties
        self.billing_period = (start, end)
        self.step = step
        self._key: tuple[Any, ...] | None = None
        self._head: asyncpg.Record | None = None
        self._lines: dict[tuple[str, str], Line] = {}

    def add(self, rec: asyncpg.Record, prices: PriceLookup) -> list[Row]:
        key = (rec["tenant_id"], rec["project_id"], rec["period_start"], rec["served_model"], rec["front_end"],
               tuple(rec["tags"]), rec["estimated"])
        done = self.flush() if key != self._key else []
        self._key, self._head = key, rec
        sums = GroupSums(rec["calls"], rec["charged_calls"], rec["input_tokens"], rec["cached_tokens"],
                         rec["output_tokens"], rec["provider_usd"], rec["billed_usd"])
        pricing = prices.pricing(rec["price_version"], rec["front_end"], rec["served_model"])
        for line in lines_for(rec["front_end"], rec["served_model"], pricing, sums):
            slot = (line.kind, line.sku_price_id)
            held = self._lines.get(slot)
            self._lines[slot] = held.merged(line) if held is not None else line
        return done

    def flush(self) -> list[Row]:
        head, lines = self._head, self._lines
        self._key, self._head, self._lines = None, None, {}
        if head is None:
            return []
        ordered = sorted(lines.values(), key=lambda line: (KINDS.index(line.kind), line.sku_price_id))
        return [self._row(head, line) for line in ordered]

    def _row(self, g: asyncpg.Record, line: Line) -> Row:
        p = self.parties
        front_end, model = g["front_end"], g["served_model"]
        period_start = g["period_start"].replace(tzinfo=UTC)
        tenant = str(g["tenant_id"])
        project = str(g["project_id"]) if g["project_id"] is not None else None
        project_name = g["project_name"] if project is not None else None
        billed = line.billed_usd
        return (
            billed,  # BilledCost
            p.billing_account_id,
            p.billing_account_name,
            "USD",
            self.billing_period[1],  # BillingPeriodEnd
            self.billing_period[0],  # BillingPeriodStart
            "Usage",
            None,  # ChargeClass: no corrections
            _description(line, front_end, model),
            "Usage-Based",
            period_start + self.step,  # ChargePeriodEnd
            period_start,
            line.consumed_quantity,
            line.consumed_unit,
            billed,  # ContractedCost
            billed,  # EffectiveCost
            None,  # InvoiceId
            p.provider,  # InvoiceIssuerName
            line.list_cost,
            line.list_unit_price,
            line.pricing_category,
            line.pricing_quantity,
            line.pricing_unit,
            p.provider,  # ProviderName
            p.publisher,
            "AI and Machine Learning",
            _SERVICES.get(front_end, f"Baseten via {front_end}"),
            "Generative AI",
            sku_id(front_end, model, line.kind),
            METERS[line.kind],
            None,  # SkuPriceDetails
            line.sku_price_id,
            tenant,  # SubAccountId
            g["tenant_name"] or tenant,
            _tags(g["tags"], project_name or project),
            bool(g["estimated"]),
            front_end,
            model,
            project,
            project_name,
            line.kind,
        )


def _description(line: Line, front_end: str, model: str) -> str:
    where = f"{model} via {_FRONT_ENDS.get(front_end, front_end)}"
    if line.kind == INPUT:
        return f"Input tokens not read from cache, {where}"
    if line.kind == CACHED_INPUT:
        return f"Cached input tokens, {where}"
    if line.kind == OUTPUT:
        return f"Output tokens (reasoning included), {where}"
    if line.sku_price_id.endswith(AS_CHARGED):
        return f"Calls priced as the upstream quoted or charged each one, {where}"
    return f"Calls at a fee per call, {where}"


def _tags(tags: list[str], project: str | None) -> str | None:
    pairs: dict[str, str | bool] = dict.fromkeys(tags, True)
    if project is not None:
        pairs[PROJECT_TAG] = project
    return orjson.dumps(pairs, option=orjson.OPT_SORT_KEYS).decode() if pairs else None
