"""Streamed CSV / JSON Lines exports: the operator's monthly billing file and a tenant's ledger rows.

The billing export reads the daily rollup through a cursor inside one read-only REPEATABLE READ
transaction, so its rows and its totals come from a single snapshot and a rerun over a closed
month gives byte-identical output. The tenant export pages the ledger by keyset on
(started_at, request_id, attempt), holding no connection between pages, so a slow client costs
the pool nothing. Money is written exactly, never through float.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from service.errors import invalid
from service.metering.reports import COUNT_FIELDS, MAX_RANGE_DAYS, ZERO_MONEY, money

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

BILLING_COLUMNS = (
    "tenant_id", "tenant_name", "day", "model", "front_end", *COUNT_FIELDS, "provider_cost_usd", "billed_usd",
)
_BILLING_MONEY = ("provider_cost_usd", "billed_usd")

LEDGER_COLUMNS = (
    "request_id", "attempt", "started_at", "ended_at", "requested_model", "served_model", "front_end",
    "status", "error_code", "stream", "prompt_tokens", "cached_tokens", "completion_tokens",
    "reasoning_tokens", "billed_usd", "estimated",
)


def parse_format(value: str | None) -> str:
    fmt = value or "csv"
    if fmt not in FORMATS:
        raise invalid(f"`format` must be one of {', '.join(FORMATS)}; got {fmt!r}.", "format")
    return fmt


def parse_period(value: str | None) -> date:
    """A billing period as YYYY-MM: the first day of that month."""
    if not value:
        raise invalid("`period` is required, as YYYY-MM.", "period", code="missing_required_parameter")
    try:
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except ValueError:
        raise invalid(f"`period` must be a month as YYYY-MM, got {value!r}.", "period") from None


def _instant(value: str, param: str, *, end: bool) -> datetime:
    """An ISO date or date-time (UTC when it names no offset); a bare date as `to` means that day's end."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"`{param}` must be an ISO 8601 date or date-time, got {value!r}.", param) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def instant_range(start: str | None, end: str | None, *, now: datetime) -> tuple[datetime, datetime]:
    """A half-open range [from, to) of instants; by default from the start of this month to now."""
    now = now.astimezone(UTC)
    first = _instant(start, "from", end=False) if start else datetime(now.year, now.month, 1, tzinfo=UTC)
    last = _instant(end, "to", end=True) if end else now
    if last <= first:
        raise invalid("`to` must be after `from`.", "to")
    if last - first > timedelta(days=MAX_RANGE_DAYS):
        raise invalid(f"The range may cover at most {MAX_RANGE_DAYS} days.", "to")
    return first, last


class _Encoder:
    """Rows to bytes in one format; CSV values are already strings, JSON keeps ints and booleans."""

    def __init__(self, fmt: str, columns: tuple[str, ...]) -> None:
        self.fmt = fmt
        self.columns = columns

    def header(self) -> bytes:
        return self._csv([self.columns]) if self.fmt == "csv" else b""

    def rows(self, rows: Iterable[dict[str, Any]]) -> bytes:
        if self.fmt == "csv":
            return self._csv([[_csv_value(r[c]) for c in self.columns] for r in rows])
        return b"".join(orjson.dumps(r) + b"\n" for r in rows)

    @staticmethod
    def _csv(rows: Iterable[Iterable[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().encode("utf-8")


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_BILLING_QUERY = f"""
SELECT d.tenant_id, COALESCE(t.name, '') AS tenant_name, d.day, d.served_model AS model, d.front_end,
       {', '.join(f'd.{f}' for f in COUNT_FIELDS)}, d.provider_cost_usd, d.billed_usd
FROM usage_daily d LEFT JOIN tenants t ON t.id = d.tenant_id
WHERE d.day >= $1 AND d.day < $2
ORDER BY t.name COLLATE "C" NULLS LAST, d.tenant_id, d.day,
         d.served_model COLLATE "C", d.front_end COLLATE "C"
"""


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


async def billing_export(conn, month: date, fmt: str, *, batch: int = 500) -> AsyncIterator[bytes]:
    """Per tenant x day x model x front end for one month, then a totals line.

    `conn` is a connection (not a pool): the cursor needs one transaction for the whole read.
    """
    encoder = _Encoder(fmt, BILLING_COLUMNS)
    total: dict[str, Any] = {f: 0 for f in COUNT_FIELDS} | {f: ZERO_MONEY for f in _BILLING_MONEY}
    yield encoder.header()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        pending: list[dict[str, Any]] = []
        async for rec in conn.cursor(_BILLING_QUERY, month, _next_month(month), prefetch=batch):
            for f in COUNT_FIELDS:
                total[f] += rec[f]
            for f in _BILLING_MONEY:
                total[f] += rec[f]
            pending.append({
                "tenant_id": str(rec["tenant_id"]),
                "tenant_name": rec["tenant_name"],
                "day": rec["day"].isoformat(),
                "model": rec["model"],
                "front_end": rec["front_end"],
                **{f: rec[f] for f in COUNT_FIELDS},
                **{f: money(rec[f]) for f in _BILLING_MONEY},
            })
            if len(pending) >= batch:
                yield encoder.rows(pending)
                pending = []
        if pending:
            yield encoder.rows(pending)
    rendered = {**total, **{f: money(total[f]) for f in _BILLING_MONEY}}
    if fmt == "csv":
        yield encoder.rows([{"tenant_id": "", "tenant_name": "", "day": "TOTAL", "model": "", "front_end": "",
                             **rendered}])
    else:
        yield orjson.dumps({"total": rendered}) + b"\n"


_LEDGER_SELECT = """
SELECT request_id, attempt, started_at, ended_at, requested_model, served_model, front_end, status,
       error_code, stream, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
       billed_usd, estimated
FROM usage_events
WHERE tenant_id = $1 AND started_at >= $2 AND started_at < $3
"""
_LEDGER_FIRST = _LEDGER_SELECT + " ORDER BY started_at, request_id, attempt LIMIT $4"
_LEDGER_NEXT = (
    _LEDGER_SELECT
    + " AND (started_at, request_id, attempt) > ($5, $6, $7)"
    + " ORDER BY started_at, request_id, attempt LIMIT $4"
)


def _ledger_row(rec: Any) -> dict[str, Any]:
    row = {c: rec[c] for c in LEDGER_COLUMNS}
    row["started_at"] = rec["started_at"].astimezone(UTC).isoformat()
    row["ended_at"] = rec["ended_at"].astimezone(UTC).isoformat()
    row["billed_usd"] = money(rec["billed_usd"])
    return row


async def ledger_export(
    db, tenant_id: uuid.UUID, start: datetime, end: datetime, fmt: str, *, batch: int = 1000
) -> AsyncIterator[bytes]:
    """One tenant's ledger rows started in [start, end), oldest first; `db` is a pool or connection.

    The billed amount only: provider cost is the operator's business, not the tenant's.
    """
    encoder = _Encoder(fmt, LEDGER_COLUMNS)
    yield encoder.header()
    rows = await db.fetch(_LEDGER_FIRST, tenant_id, start, end, batch)
    while rows:
        yield encoder.rows(_ledger_row(r) for r in rows)
        if len(rows) < batch:
            return
        last = rows[-1]
        rows = await db.fetch(_LEDGER_NEXT, tenant_id, start, end, batch,
                              last["started_at"], last["request_id"], last["attempt"])
