"""Usage reads: a tenant's own (/v1/usage, /v1/usage/export) and the operator's (/admin/usage, billing).

Tenant endpoints take the tenant id from the authenticated key only, never from the request.
Parameters are validated before a stream starts, so a bad one is a 400, not a broken download.
"""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Request, Response, get
from litestar.response import Stream

from service.api.admin import database
from service.api.common import authenticate, json_response
from service.auth.admin_token import admin_guard
from service.metering import exports, reports


def _attachment(name: str, fmt: str) -> dict[str, str]:
    return {"content-disposition": f'attachment; filename="{name}.{fmt}"', "cache-control": "no-store"}


@get("/v1/usage")
async def tenant_usage(request: Request) -> Response:
    principal = await authenticate(request)
    q = request.query_params
    first, last = reports.day_range(q.get("from"), q.get("to"), today=datetime.now(UTC).date())
    return json_response(await reports.tenant_usage(database(request), principal.tenant_id, first, last))


@get("/v1/usage/export")
async def tenant_usage_export(request: Request) -> Stream:
    principal = await authenticate(request)
    q = request.query_params
    fmt = exports.parse_format(q.get("format"))
    start, end = exports.instant_range(q.get("from"), q.get("to"), now=datetime.now(UTC))
    stream = exports.ledger_export(database(request), principal.tenant_id, start, end, fmt)
    name = f"usage-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}"
    return Stream(stream, media_type=exports.FORMATS[fmt], headers=_attachment(name, fmt))


@get("/admin/usage", guards=[admin_guard])
async def admin_usage(request: Request) -> Response:
    q = request.query_params
    first, last = reports.day_range(q.get("from"), q.get("to"), today=datetime.now(UTC).date())
    group_by = reports.parse_group_by(q.get("group_by"))
    return json_response(await reports.usage_summary(database(request), first, last, group_by))


@get("/admin/billing/export", guards=[admin_guard])
async def billing_export(request: Request) -> Stream:
    q = request.query_params
    month = exports.parse_period(q.get("period"))
    fmt = exports.parse_format(q.get("format"))
    pool = database(request)

    async def chunks():
        async with pool.acquire() as conn:
            async for chunk in exports.billing_export(conn, month, fmt):
                yield chunk

    headers = _attachment(f"billing-{month:%Y-%m}", fmt)
    return Stream(chunks(), media_type=exports.FORMATS[fmt], headers=headers)


USAGE_HANDLERS = [tenant_usage, tenant_usage_export, admin_usage, billing_export]
