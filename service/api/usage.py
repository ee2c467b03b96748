"""Usage reads: a tenant's own (/v1/usage, /v1/usage/export) and the operator's (/admin/usage, billing).

Tenant endpoints take the tenant id from the authenticated key only, never from the request.
Every parameter is validated, its range included, before a stream starts, so a bad one is a 400,
not a download cut after its header line.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from litestar import Request, Response, get
from litestar.response import Stream

from service.api.admin import database
from service.api.common import authenticate, json_response
from service.auth.admin_token import admin_guard
from service.errors import invalid
from service.input_limits import check_storable
from service.metering import exports, reports

# Dates, periods, formats and group lists are all short.
MAX_QUERY_CHARS = 64
# A day inside each end of Python's date range: a bare `to` date is read as the next midnight and
# an offset moves an instant by up to a day, both of which overflow at year 1 or 9999.
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)
# The billing export reads up to the month after its period.
LAST_PERIOD = date(9999, 11, 1)


def _attachment(name: str, fmt: str) -> dict[str, str]:
    # The content type is given whole: Litestar would append a second charset to a text/* type.
    return {"content-disposition": f'attachment; filename="{name}.{fmt}"', "cache-control": "no-store",
            "content-type": exports.FORMATS[fmt]}


def query(request: Request, name: str) -> str | None:
    """A query parameter as text the rest of the gateway (and the database) can take, or None."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value:
        # `?to=` reads as no `to` to the parsers below; say it is wrong rather than guess.
        raise invalid(f"`{name}` is empty; give a value or leave the parameter out.", name)
    check_storable(value, name)
    if len(value) > MAX_QUERY_CHARS:
        raise invalid(f"`{name}` is too long: at most {MAX_QUERY_CHARS} characters.", name)
    return value


def dated(request: Request, name: str) -> str | None:
    """A `from` or `to` parameter whose date, when it reads as one, is inside the supported range."""
    value = query(request, name)
    if value is None:
        return None
    try:
        day = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value).date()
    except ValueError:
        return value  # not a date at all: the parser answers with its own message
    if not FIRST_DAY <= day <= LAST_DAY:
        raise invalid(f"`{name}` must fall between {FIRST_DAY} and {LAST_DAY}.", name)
    return value


def _period(request: Request) -> date:
    month = exports.parse_period(query(request, "period"))
    if month > LAST_PERIOD:
        raise invalid(f"`period` must be at most {LAST_PERIOD:%Y-%m}.", "period")
    return month


def _days(request: Request) -> tuple[date, date]:
    return reports.day_range(dated(request, "from"), dated(request, "to"), today=datetime.now(UTC).date())


@get("/v1/usage")
async def tenant_usage(request: Request) -> Response:
    principal = await authenticate(request)
    first, last = _days(request)
    return json_response(await reports.tenant_usage(database(request), principal.tenant_id, first, last))


@get("/v1/usage/export")
async def tenant_usage_export(request: Request) -> Stream:
    principal = await authenticate(request)
    fmt = exports.parse_format(query(request, "format"))
    start, end = exports.instant_range(dated(request, "from"), dated(request, "to"), now=datetime.now(UTC))
    stream = exports.ledger_export(database(request), principal.tenant_id, start, end, fmt)
    name = f"usage-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    return Stream(stream, media_type=exports.FORMATS[fmt], headers=_attachment(name, fmt))


@get("/admin/usage", guards=[admin_guard])
async def admin_usage(request: Request) -> Response:
    first, last = _days(request)
    group_by = reports.parse_group_by(query(request, "group_by"))
    return json_response(await reports.usage_summary(database(request), first, last, group_by))


@get("/admin/billing/export", guards=[admin_guard])
async def billing_export(request: Request) -> Stream:
    month = _period(request)
    fmt = exports.parse_format(query(request, "format"))
    pool = database(request)

    async def chunks():
        async with pool.acquire() as conn:
            async for chunk in exports.billing_export(conn, month, fmt):
                yield chunk

    headers = _attachment(f"billing-{month:%Y-%m}", fmt)
    return Stream(chunks(), media_type=exports.FORMATS[fmt], headers=headers)


USAGE_HANDLERS = [tenant_usage, tenant_usage_export, admin_usage, billing_export]
