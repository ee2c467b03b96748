"""Usage reads: a tenant's own (/v1/usage, /v1/usage/export, /v1/usage/focus) and the operator's
(/admin/usage, /admin/billing/export, /admin/billing/focus).

Every read groups by (`group_by`) and filters by (`project`, `key`, `model`, `front_end`, `tag`,
`user`; the operator's also `tenant`) what service.metering.usage_query knows; an unknown
`group_by` value or a filter naming nothing is a 400. Tenant endpoints take the tenant id from the
authenticated key only, never from the request: they refuse a `tenant` parameter rather than
ignore it. Parameters are validated before a stream starts, so a bad one is a 400, not a broken
download.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime

from litestar import Response, get
from litestar.response import Stream

from service.api.admin_input import database
from service.api.common import ApiRequest, authenticate, json_response, runtime
from service.auth.admin_token import admin_guard
from service.auth.principal import Principal
from service.db.pool import Db
from service.errors import invalid
from service.input_limits import check_storable, echo
from service.metering import exports, focus, reports
from service.metering.focus_format import MEDIA_TYPES
from service.metering.focus_skus import PriceLookup
from service.metering.usage_query import (
    FILTER_KEYS,
    GROUP_KEYS,
    UsageQuery,
    check_user_scope,
    filter_refs,
    parse_group_by,
    parse_limit,
    resolve_filters,
)

# Dates, periods, formats and group lists are short; filter values (a user, a tag, a name) less so.
MAX_QUERY_CHARS = 64
MAX_FILTER_CHARS = 512
# A day inside each end of Python's date range: a bare `to` date is read as the next midnight and
# an offset moves an instant by up to a day, both of which overflow at year 1 or 9999.
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)
# The billing export reads up to the month after its period.
LAST_PERIOD = date(9999, 11, 1)

TENANT_GROUP_KEYS = tuple(k for k in GROUP_KEYS if k != "tenant")
TENANT_FILTER_KEYS = tuple(k for k in FILTER_KEYS if k != "tenant")
TENANT_DEFAULT_GROUPS = ("day", "model", "front_end")


def _attachment(name: str, fmt: str) -> dict[str, str]:
    # The content type is given whole: Litestar would append a second charset to a text/* type.
    return {"content-disposition": f'attachment; filename="{name}.{fmt}"', "cache-control": "no-store",
            "content-type": exports.FORMATS[fmt]}


def checked_params(request: ApiRequest) -> dict[str, str]:
    """The query parameters as text the rest of the gateway (and the database) can take, each
    bounded, `from` and `to` inside the supported range: checked before any response starts."""
    out: dict[str, str] = {}
    for name, value in request.query_params.items():
        check_storable(name, "query")
        if not value:
            # `?to=` reads as no `to` to the parsers; say it is wrong rather than guess.
            raise invalid(f"`{echo(name)}` is empty; give a value or leave the parameter out.", name)
        check_storable(value, name)
        limit = MAX_FILTER_CHARS if name in FILTER_KEYS else MAX_QUERY_CHARS
        if len(value) > limit:
            raise invalid(f"`{echo(name)}` is too long: at most {limit} characters.", name)
        if name in ("from", "to"):
            _in_range(name, value)
        out[name] = value
    return out


def _in_range(name: str, value: str) -> None:
    try:
        day = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value).date()
    except ValueError:
        return  # not a date at all: the parser answers with its own message
    if not FIRST_DAY <= day <= LAST_DAY:
        raise invalid(f"`{name}` must fall between {FIRST_DAY} and {LAST_DAY}.", name)


def _period(q: Mapping[str, str]) -> date:
    month = exports.parse_period(q.get("period"))
    if month > LAST_PERIOD:
        raise invalid(f"`period` must be at most {LAST_PERIOD:%Y-%m}.", "period")
    return month


def _tenant_params(q: Mapping[str, str]) -> dict[str, str]:
    if "tenant" in q:
        raise invalid("`tenant` is not a filter here: /v1/usage is always the calling key's tenant.", "tenant")
    return filter_refs(q, TENANT_FILTER_KEYS)


async def _tenant_query(request: ApiRequest, principal: Principal, q: Mapping[str, str]) -> UsageQuery:
    refs = _tenant_params(q)
    first, last = reports.day_range(q.get("from"), q.get("to"), today=datetime.now(UTC).date())
    group_by = parse_group_by(q.get("group_by"), allowed=TENANT_GROUP_KEYS, default=TENANT_DEFAULT_GROUPS)
    limit = parse_limit(q.get("limit"), group_by)
    filters = await resolve_filters(database(request), refs, tenant_id=principal.tenant_id)
    return UsageQuery(first, last, group_by, filters, limit)


@get("/v1/usage")
async def tenant_usage(request: ApiRequest) -> Response[bytes]:
    principal = await authenticate(request)
    query = await _tenant_query(request, principal, checked_params(request))
    return json_response(await reports.tenant_usage(database(request), query))


@get("/v1/usage/export")
async def tenant_usage_export(request: ApiRequest) -> Stream:
    """Ledger rows by default; with `group_by`, the grouped usage over a range of days."""
    principal = await authenticate(request)
    q = checked_params(request)
    fmt = exports.parse_format(q.get("format"))
    pool = database(request)
    if q.get("group_by") is not None:
        query = await _tenant_query(request, principal, q)
        query = UsageQuery(query.first, query.last, query.group_by, query.filters)  # an export is whole

        async def grouped() -> AsyncIterator[bytes]:
            async with pool.acquire() as conn:
                async for chunk in exports.grouped_export(conn, query, fmt, tenant_view=True):
                    yield chunk

        name = f"usage-{query.first:%Y%m%d}-{query.last:%Y%m%d}"
        return Stream(grouped(), media_type=exports.FORMATS[fmt], headers=_attachment(name, fmt))
    refs = _tenant_params(q)
    start, end = exports.instant_range(q.get("from"), q.get("to"), now=datetime.now(UTC))
    filters = await resolve_filters(pool, refs, tenant_id=principal.tenant_id)
    stream = exports.ledger_export(pool, principal.tenant_id, start, end, fmt, filters=filters)
    name = f"usage-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    return Stream(stream, media_type=exports.FORMATS[fmt], headers=_attachment(name, fmt))


async def admin_query(conn: Db, q: Mapping[str, str | None],
                      first_last: tuple[date, date] | None = None) -> UsageQuery:
    """The operator's query from request parameters (or CLI options of the same names)."""
    refs = filter_refs(q)
    if first_last is None:
        first_last = reports.day_range(q.get("from"), q.get("to"), today=datetime.now(UTC).date())
    group_by = parse_group_by(q.get("group_by"))
    limit = parse_limit(q.get("limit"), group_by)
    filters = await resolve_filters(conn, refs, tenant_id=None)
    query = UsageQuery(first_last[0], first_last[1], group_by, filters, limit)
    check_user_scope(query)
    return query


@get("/admin/usage", guards=[admin_guard])
async def admin_usage(request: ApiRequest) -> Response[bytes]:
    pool = database(request)
    query = await admin_query(pool, checked_params(request))
    return json_response(await reports.usage_summary(pool, query))


@get("/admin/billing/export", guards=[admin_guard])
async def billing_export(request: ApiRequest) -> Stream:
    q = checked_params(request)
    month = _period(q)
    fmt = exports.parse_format(q.get("format"))
    pool = database(request)
    refs = filter_refs(q)
    group_by = parse_group_by(q.get("group_by"), default=exports.BILLING_GROUPS)
    filters = await resolve_filters(pool, refs, tenant_id=None)
    check_user_scope(UsageQuery(month, month, group_by, filters))

    async def chunks() -> AsyncIterator[bytes]:
        async with pool.acquire() as conn:
            async for chunk in exports.billing_export(conn, month, fmt, group_by=group_by, filters=filters):
                yield chunk

    headers = _attachment(f"billing-{month:%Y-%m}", fmt)
    return Stream(chunks(), media_type=exports.FORMATS[fmt], headers=headers)


def _focus_stream(request: ApiRequest, tenant_id: uuid.UUID | None) -> Stream:
    """FOCUS rows for ?period=YYYY-MM&format=csv|parquet&granularity=day|hour, all tenants or one."""
    q = checked_params(request)
    month = _period(q)
    fmt = focus.parse_format(q.get("format"))
    granularity = focus.parse_granularity(q.get("granularity"))
    rt = runtime(request)
    prices = PriceLookup.running(rt.catalog, rt.settings.catalog_overrides_path)
    pool = database(request)

    async def chunks() -> AsyncIterator[bytes]:
        async with pool.acquire() as conn:
            async for chunk in focus.focus_export(conn, month, fmt, granularity, prices, tenant_id=tenant_id):
                yield chunk

    name = focus.file_name(month, granularity, fmt)
    # The content type is given whole: Litestar would append a second charset to a text/* type.
    headers = {"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store",
               "content-type": MEDIA_TYPES[fmt]}
    return Stream(chunks(), media_type=MEDIA_TYPES[fmt], headers=headers)


@get("/v1/usage/focus")
async def tenant_usage_focus(request: ApiRequest) -> Stream:
    """The caller's own billed usage as FOCUS 1.2; the tenant comes from the key, never the query."""
    principal = await authenticate(request)
    return _focus_stream(request, principal.tenant_id)


@get("/admin/billing/focus", guards=[admin_guard])
async def billing_focus(request: ApiRequest) -> Stream:
    return _focus_stream(request, None)


USAGE_HANDLERS = [tenant_usage, tenant_usage_export, tenant_usage_focus, admin_usage, billing_export, billing_focus]
