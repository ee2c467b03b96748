"""Streamed CSV / JSON Lines exports: grouped usage (the operator's monthly billing file, a tenant's
own grouped usage) and a tenant's ledger rows.

Grouped exports read the rollups (or, per end user, the ledger) through a cursor inside one
read-only REPEATABLE READ transaction, so rows and totals come from a single snapshot and a rerun
over a closed month gives byte-identical output; they group and filter by everything
service.metering.usage_query knows. The ledger export pages by keyset on (started_at, request_id,
attempt), holding no connection between pages, so a slow client costs the pool nothing; it filters
by project, key, model, front end, tag and user and carries each row's attribution. Money is written
exactly, never through float.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from service.db.pool import Conn, Db, Row, returned
from service.errors import invalid
from service.metering.reports import MAX_RANGE_DAYS, ZERO_MONEY, money, totals
from service.metering.usage_query import (
    COUNT_FIELDS,
    MONEY_FIELDS,
    Filters,
    UsageQuery,
    check_user_scope,
    group_columns,
    group_fields,
    grouped_sql,
    total_sql,
)

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

BILLING_GROUPS = ("tenant", "day", "model", "front_end")
# Money columns: the operator's (provider cost, billed, the always-direct baseline and the saving)
# and a tenant's (what it is billed, the baseline and the saving, in billed terms).
OPERATOR_MONEY = (*MONEY_FIELDS, "savings_usd")
TENANT_MONEY = ("cost_usd", "direct_cost_usd", "savings_usd")
BILLING_COLUMNS = (*group_columns(list(BILLING_GROUPS)), *COUNT_FIELDS, *OPERATOR_MONEY)

LEDGER_COLUMNS = (
    "request_id", "attempt", "started_at", "ended_at", "requested_model", "served_model", "front_end",
    "status", "error_code", "stream", "prompt_tokens", "cached_tokens", "completion_tokens",
    "reasoning_tokens", "billed_usd", "estimated", "project_id", "key_id", "key_prefix", "end_user", "tags",
    "metadata",
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


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


async def grouped_export(conn: Conn, query: UsageQuery, fmt: str, *, tenant_view: bool = False,
                         batch: int = 500) -> AsyncIterator[bytes]:
    """The query's groups, then a totals line, read from one snapshot.

    The operator's view carries provider cost and billed amount; a tenant's (`tenant_view`) only
    what it is billed, as `cost_usd`. `conn` is a connection (not a pool): the cursor needs one
    transaction for the whole read, and a rerun over a closed period gives byte-identical output.
    """
    check_user_scope(query)
    keys = query.keys
    money_fields = TENANT_MONEY if tenant_view else OPERATOR_MONEY
    group_cols = group_columns(keys)
    encoder = _Encoder(fmt, (*group_cols, *COUNT_FIELDS, *money_fields))
    yield encoder.header()
    sql, args = grouped_sql(query)
    total_query, total_args = total_sql(query)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        pending: list[dict[str, Any]] = []
        async for rec in conn.cursor(sql, *args, prefetch=batch):
            pending.append(_grouped_row(rec, keys, tenant_view))
            if len(pending) >= batch:
                yield encoder.rows(pending)
                pending = []
        if pending:
            yield encoder.rows(pending)
        total = totals(returned(await conn.fetchrow(total_query, *total_args)))
    rendered = {**{f: total[f] for f in COUNT_FIELDS}, **_money_fields(total, tenant_view)}
    if fmt == "csv":
        label = "day" if "day" in group_cols else group_cols[0]
        yield encoder.rows([{**dict.fromkeys(group_cols, ""), label: "TOTAL", **rendered}])
    else:
        yield orjson.dumps({"total": rendered}) + b"\n"


def _grouped_row(rec: Row, keys: list[str], tenant_view: bool) -> dict[str, Any]:
    row = group_fields(rec, keys)
    if "tenant_name" in row and row["tenant_name"] is None:
        row["tenant_name"] = ""  # a deleted tenant's usage still bills
    row.update({f: rec[f] for f in COUNT_FIELDS})
    row.update(_money_fields(rec, tenant_view))
    return row


def _money_fields(rec: Row, tenant_view: bool) -> dict[str, str]:
    billed = rec["billed_usd"] if rec["billed_usd"] is not None else ZERO_MONEY
    direct = rec["direct_billed_usd"] if rec["direct_billed_usd"] is not None else ZERO_MONEY
    saving = money(direct - billed)
    if tenant_view:
        return {"cost_usd": money(billed), "direct_cost_usd": money(direct), "savings_usd": saving}
    provider = rec["provider_cost_usd"] if rec["provider_cost_usd"] is not None else ZERO_MONEY
    return {"provider_cost_usd": money(provider), "billed_usd": money(billed), "direct_billed_usd": money(direct),
            "savings_usd": saving}


async def billing_export(
    conn: Conn, month: date, fmt: str, *, batch: int = 500, group_by: tuple[str, ...] = BILLING_GROUPS,
    filters: Filters | None = None,
) -> AsyncIterator[bytes]:
    """One month, by default per tenant x day x model x front end, then a totals line."""
    query = UsageQuery(month, _next_month(month) - timedelta(days=1), group_by, filters or Filters())
    async for chunk in grouped_export(conn, query, fmt, batch=batch):
        yield chunk


_LEDGER_SELECT = """
SELECT e.request_id, e.attempt, e.started_at, e.ended_at, e.requested_model, e.served_model, e.front_end, e.status,
       e.error_code, e.stream, e.prompt_tokens, e.cached_tokens, e.completion_tokens, e.reasoning_tokens,
       e.billed_usd, e.estimated, e.project_id, e.key_id, k.prefix AS key_prefix, e.end_user, e.tags, e.metadata
FROM usage_events e LEFT JOIN api_keys k ON k.id = e.key_id
WHERE e.tenant_id = $1 AND e.started_at >= $2 AND e.started_at < $3
"""
_LEDGER_ORDER = " ORDER BY e.started_at, e.request_id, e.attempt LIMIT $4"
# The ledger export's filters: a condition on the row, `{}` standing for its parameter.
_LEDGER_FILTERS = {
    "project_id": "e.project_id = {}", "key_id": "e.key_id = {}", "model": "e.served_model = {}",
    "front_end": "e.front_end = {}", "tag": "{} = ANY(e.tags)", "user": "e.end_user = {}",
}


def _ledger_row(rec: Row, fmt: str) -> dict[str, Any]:
    row = {c: rec[c] for c in LEDGER_COLUMNS if c not in ("tags", "metadata")}
    row["started_at"] = rec["started_at"].astimezone(UTC).isoformat()
    row["ended_at"] = rec["ended_at"].astimezone(UTC).isoformat()
    row["billed_usd"] = money(rec["billed_usd"])
    row["project_id"] = str(rec["project_id"]) if rec["project_id"] else None
    row["key_id"] = str(rec["key_id"]) if rec["key_id"] else None
    tags, metadata = list(rec["tags"] or ()), rec["metadata"]
    if fmt == "csv":
        # Tags never hold commas (service.gateway.attribution); metadata stays JSON text.
        row["tags"], row["metadata"] = ",".join(tags), metadata
    else:
        row["tags"], row["metadata"] = tags, orjson.loads(metadata) if metadata is not None else None
    return row


async def ledger_export(
    db: Db, tenant_id: uuid.UUID, start: datetime, end: datetime, fmt: str, *, batch: int = 1000,
    filters: Filters | None = None,
) -> AsyncIterator[bytes]:
    """One tenant's ledger rows started in [start, end), oldest first; `db` is a pool or connection.

    The billed amount only: provider cost is the operator's business, not the tenant's. Filters
    other than the tenant narrow the rows; the tenant is always the one given.
    """
    f = filters or Filters()
    conditions, extra = [], []
    for name, value in (("project_id", f.project_id), ("key_id", f.key_id), ("model", f.model),
                        ("front_end", f.front_end), ("tag", f.tag), ("user", f.user)):
        if value is not None:
            extra.append(value)
            conditions.append(" AND " + _LEDGER_FILTERS[name].format(f"${4 + len(extra)}"))
    base = _LEDGER_SELECT + "".join(conditions)
    after = len(extra) + 5
    first = base + _LEDGER_ORDER
    following = base + f" AND (e.started_at, e.request_id, e.attempt) > (${after}, ${after + 1}, ${after + 2})" \
        + _LEDGER_ORDER
    encoder = _Encoder(fmt, LEDGER_COLUMNS)
    yield encoder.header()
    rows = await db.fetch(first, tenant_id, start, end, batch, *extra)
    while rows:
        yield encoder.rows(_ledger_row(r, fmt) for r in rows)
        if len(rows) < batch:
            return
        last = rows[-1]
        rows = await db.fetch(following, tenant_id, start, end, batch, *extra,
                              last["started_at"], last["request_id"], last["attempt"])
