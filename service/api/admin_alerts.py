"""/admin alerts: the tenants' and the operator's webhooks, a budget's thresholds, and the events
with each delivery's status and attempts."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

from litestar import Request, Response, delete, get, put
from litestar.params import FromPath

from service.alerts import outbox, webhooks
from service.alerts.rules import EVENT_KINDS, MAX_THRESHOLDS
from service.alerts.urls import MAX_URL_LENGTH, UrlRefused, check_url, host_and_port
from service.api.admin import database, decimal_value
from service.api.common import json_body, json_response, runtime
from service.auth import tenants
from service.auth.admin_token import admin_guard
from service.errors import GatewayError, invalid

MAX_PAGE = 500
AdminRequest = Request[Any, Any, Any]

_H16 = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join((f"({_H16}:){{7}}{_H16}", f"({_H16}:){{1,7}}:", f"({_H16}:){{1,6}}:{_H16}",
                  *(f"({_H16}:){{1,{n}}}(:{_H16}){{1,{7 - n}}}" for n in range(5, 0, -1)),
                  f":((:{_H16}){{1,7}}|:)"))
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
# What a webhook URL may look like: http(s), a host name, IPv4 or bracketed IPv6 address, an
# optional port and path (with a query) in printable ASCII, no credentials or fragment. The OpenAPI document
# publishes this same pattern, so what it admits the API accepts (the address checks aside).
WEBHOOK_URL_PATTERN = (f"^https?://({_LABEL}(\\.{_LABEL})*\\.?|\\[({_IPV6})\\])(:{_PORT})?"
                       '(/[!-"$-~]*)?$')
_WEBHOOK_URL = re.compile(WEBHOOK_URL_PATTERN)


def _fields(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, code="invalid_json")
    for name in body:
        if name not in allowed:
            raise invalid(f"Unknown field {name!r}; expected some of {', '.join(allowed)}.", name,
                          code="unknown_parameter")
    return body


def _uuid(value: str, param: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid(f"`{param}` must be a UUID, got {value!r}.", param) from None


async def _tenant_id(conn: Any, ref: str) -> uuid.UUID:
    # Postgres text cannot hold NUL, so no tenant is named with one (and asking would fail).
    record = None if "\x00" in ref else await tenants.get_tenant(conn, ref)
    if record is None:
        raise GatewayError(404, f"No tenant {ref!r}.", type="not_found_error", code="tenant_not_found")
    return record.id


async def _webhook_body(request: AdminRequest, *, tenant: bool) -> tuple[str, bool]:
    body = _fields(await json_body(request), ("url", "rotate_secret"))
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise invalid("`url` is required: the http(s) URL alerts are POSTed to.", "url",
                      code="missing_required_parameter" if url is None else "invalid_value")
    if len(url) > MAX_URL_LENGTH or not _WEBHOOK_URL.fullmatch(url):
        raise invalid("`url` must be an http(s) URL with a host name or IP address, an optional port and path, "
                      f"and no credentials or #fragment, at most {MAX_URL_LENGTH} characters.", "url",
                      code="invalid_url")
    rotate = body.get("rotate_secret", False)
    if not isinstance(rotate, bool):
        raise invalid("`rotate_secret` must be true or false.", "rotate_secret")
    try:
        if tenant:
            await check_url(url, allow_private=runtime(request).settings.alerts.allow_private_urls)
        else:
            host_and_port(url)  # the operator's own receiver may be internal
    except UrlRefused as exc:
        raise invalid(f"This webhook URL cannot be used: {exc}.", "url", code="invalid_url") from None
    return url, rotate


async def _put_webhook(request: AdminRequest, tenant_id: uuid.UUID | None) -> Response[bytes]:
    url, rotate = await _webhook_body(request, tenant=tenant_id is not None)
    async with database(request).acquire() as conn:
        webhook, secret, created = await webhooks.put_webhook(conn, tenant_id, url, rotate_secret=rotate)
    # The secret is in this answer only when it is new; keep it to verify signatures.
    return json_response(webhook.as_json(secret), status=201 if created else 200)


def _no_webhook(whose: str) -> GatewayError:
    return GatewayError(404, f"{whose} has no alert webhook.", type="not_found_error",
                        code="webhook_not_found")


@put("/admin/tenants/{tenant:str}/alerts/webhook", guards=[admin_guard])
async def put_tenant_webhook(request: AdminRequest, tenant: FromPath[str]) -> Response[bytes]:
    async with database(request).acquire() as conn:
        tenant_id = await _tenant_id(conn, tenant)
    return await _put_webhook(request, tenant_id)


@get("/admin/tenants/{tenant:str}/alerts/webhook", guards=[admin_guard])
async def get_tenant_webhook(request: AdminRequest, tenant: FromPath[str]) -> Response[bytes]:
    async with database(request).acquire() as conn:
        webhook = await webhooks.get_webhook(conn, await _tenant_id(conn, tenant))
    if webhook is None:
        raise _no_webhook(f"Tenant {tenant!r}")
    return json_response(webhook.as_json())


@delete("/admin/tenants/{tenant:str}/alerts/webhook", guards=[admin_guard], status_code=200)
async def delete_tenant_webhook(request: AdminRequest, tenant: FromPath[str]) -> Response[bytes]:
    async with database(request).acquire() as conn:
        webhook = await webhooks.delete_webhook(conn, await _tenant_id(conn, tenant))
    if webhook is None:
        raise _no_webhook(f"Tenant {tenant!r}")
    return json_response({**webhook.as_json(), "deleted": True})


def _operator_from_environment(request: AdminRequest) -> None:
    if runtime(request).settings.alerts.operator_url is not None:
        raise GatewayError(409, "The operator's webhook is set by SWITCHYARD_ALERT_WEBHOOK_URL; change it"
                           " there.", code="webhook_from_environment")


@put("/admin/alerts/webhook", guards=[admin_guard])
async def put_operator_webhook(request: AdminRequest) -> Response[bytes]:
    _operator_from_environment(request)
    return await _put_webhook(request, None)


@get("/admin/alerts/webhook", guards=[admin_guard])
async def get_operator_webhook(request: AdminRequest) -> Response[bytes]:
    async with database(request).acquire() as conn:
        webhook = await webhooks.get_webhook(conn, None)
    if webhook is None:
        raise _no_webhook("The operator")
    return json_response(webhook.as_json())


@delete("/admin/alerts/webhook", guards=[admin_guard], status_code=200)
async def delete_operator_webhook(request: AdminRequest) -> Response[bytes]:
    _operator_from_environment(request)
    async with database(request).acquire() as conn:
        webhook = await webhooks.delete_webhook(conn, None)
    if webhook is None:
        raise _no_webhook("The operator")
    return json_response({**webhook.as_json(), "deleted": True})


def _no_budget(budget: str) -> GatewayError:
    return GatewayError(404, f"No budget {budget}.", type="not_found_error", code="budget_not_found")


def _percents(value: Any) -> list[Decimal] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_THRESHOLDS:
        raise invalid(f"`thresholds` must be a list of at most {MAX_THRESHOLDS} percentages of the budget's"
                      " limit (such as [50, 80, 100]), or null for the default.", "thresholds")
    return [decimal_value(v, "thresholds", integer_digits=4, places=2) for v in value]


@get("/admin/budgets/{budget:str}/alerts", guards=[admin_guard])
async def get_budget_alerts(request: AdminRequest, budget: FromPath[str]) -> Response[bytes]:
    async with database(request).acquire() as conn:
        thresholds = await webhooks.get_thresholds(conn, _uuid(budget, "budget_id"))
    if thresholds is None:
        raise _no_budget(budget)
    return json_response(thresholds.as_json())


@put("/admin/budgets/{budget:str}/alerts", guards=[admin_guard])
async def put_budget_alerts(request: AdminRequest, budget: FromPath[str]) -> Response[bytes]:
    body = _fields(await json_body(request), ("thresholds",))
    if "thresholds" not in body:
        raise invalid("`thresholds` is required (a list of percentages, or null for the default).",
                      "thresholds", code="missing_required_parameter")
    percents = _percents(body["thresholds"])
    async with database(request).acquire() as conn:
        thresholds = await webhooks.set_thresholds(conn, _uuid(budget, "budget_id"), percents)
    if thresholds is None:
        raise _no_budget(budget)
    return json_response(thresholds.as_json())


def _limit(value: str | None) -> int:
    if value is None:
        return 50
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PAGE:
        raise invalid(f"`limit` must be an integer from 1 to {MAX_PAGE}.", "limit")
    return int(value)


@get("/admin/alerts/events", guards=[admin_guard])
async def list_alert_events(request: AdminRequest) -> Response[bytes]:
    q = request.query_params
    kind, status = q.get("type"), q.get("status")
    if kind is not None and kind not in EVENT_KINDS:
        raise invalid(f"`type` must be one of {', '.join(EVENT_KINDS)}.", "type")
    if status is not None and status not in outbox.EVENT_STATUSES:
        raise invalid(f"`status` must be one of {', '.join(outbox.EVENT_STATUSES)}.", "status")
    before = q.get("before")
    limit = _limit(q.get("limit"))
    async with database(request).acquire() as conn:
        tenant_ref = q.get("tenant")
        tenant_id = await _tenant_id(conn, tenant_ref) if tenant_ref is not None else None
        events = await outbox.list_events(conn, tenant_id=tenant_id, kind=kind, status=status, limit=limit,
                                          before=_uuid(before, "before") if before is not None else None)
    return json_response({"object": "list", "data": events, "has_more": len(events) == limit})


@get("/admin/alerts/events/{event:str}", guards=[admin_guard])
async def get_alert_event(request: AdminRequest, event: FromPath[str]) -> Response[bytes]:
    async with database(request).acquire() as conn:
        found = await outbox.get_event(conn, _uuid(event, "event_id"))
    if found is None:
        raise GatewayError(404, f"No alert event {event}.", type="not_found_error", code="event_not_found")
    return json_response(found)


ALERT_HANDLERS = [
    put_tenant_webhook, get_tenant_webhook, delete_tenant_webhook,
    put_operator_webhook, get_operator_webhook, delete_operator_webhook,
    get_budget_alerts, put_budget_alerts, list_alert_events, get_alert_event,
]
