"""The usage part of the OpenAPI document: /v1/usage and its exports, /admin/usage, the billing and
FOCUS exports (service.api.usage and service.metering.usage_query say what each parameter takes)."""

from __future__ import annotations

from typing import Any

from service.api.openapi_parts import (
    MONEY,
    NO_NUL,
    STR,
    STR_OR_NULL,
    JsonSchema,
    date_param,
    instant_param,
    ok,
    op,
    param,
    ref,
)
from service.api.usage import MAX_QUERY_CHARS, TENANT_GROUP_KEYS
from service.catalog.model import FRONT_ENDS
from service.metering.exports import BILLING_GROUPS
from service.metering.focus import FORMATS as FOCUS_FORMATS
from service.metering.focus import GRANULARITIES
from service.metering.usage_query import COUNT_FIELDS, GROUP_KEYS, MAX_FILTER_CHARS, MAX_LIMIT

_EXPORT_MEDIA = {"text/csv": {"type": "string"}, "application/x-ndjson": {"type": "string"}}
_FOCUS_MEDIA = {"text/csv": {"type": "string"}, "application/vnd.apache.parquet": {"type": "string",
                                                                                   "format": "binary"}}
_FORMAT = param("format", "query", {"type": "string", "enum": ["csv", "jsonl"]}, "Export format; csv by default.")
_PERIOD = param("period", "query", {"type": "string", "pattern": "^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8]"
                                    "[0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-(0[1-9]|1[0-2])$|^9999-"
                                    "(0[1-9]|1[01])$"},
                "The billing month, YYYY-MM (up to 9999-11).", required=True)
_FILTER_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_CHARS, "pattern": NO_NUL}
_GROUP_FIELDS: dict[str, JsonSchema] = {
    "tenant_id": STR, "tenant_name": STR_OR_NULL, "project_id": STR_OR_NULL, "project_name": STR_OR_NULL,
    "key_id": STR_OR_NULL, "key_prefix": STR_OR_NULL, "key_name": STR_OR_NULL, "day": {"type": "string",
                                                                                       "format": "date"},
    "model": STR, "front_end": STR, "tag": {**STR_OR_NULL, "description": "Null: rows without a tag."},
    "user": {**STR_OR_NULL, "description": "The end user the request named (`user`), null for none."},
}
_COUNTS: dict[str, JsonSchema] = {f: {"type": "integer", "minimum": 0} for f in COUNT_FIELDS}
# What a tenant sees: what it is billed, what always-Baseten-direct would have billed, the difference.
_TENANT_MONEY: dict[str, JsonSchema] = {
    "cost_usd": {**MONEY, "description": "What the tenant is billed."},
    "direct_cost_usd": {**MONEY, "description": "What the same requests would have cost always sent to Baseten "
                                                "directly (a request without a direct price at its billed cost)."},
    "savings_usd": {**MONEY, "description": "direct_cost_usd - cost_usd: positive when routing saved."},
}
_OPERATOR_MONEY: dict[str, JsonSchema] = {
    "provider_cost_usd": {**MONEY, "description": "What the upstreams charged."},
    "billed_usd": {**MONEY, "description": "What the tenants are billed (cost plus markup)."},
    "direct_billed_usd": {**MONEY, "description": "What always-Baseten-direct would have billed."},
    "savings_usd": {**MONEY, "description": "direct_billed_usd - billed_usd."},
}


def _group_by(keys: tuple[str, ...], default: tuple[str, ...]) -> dict[str, Any]:
    either = "|".join(keys)
    return param("group_by", "query", {"type": "string", "maxLength": MAX_QUERY_CHARS,
                                       "pattern": f"^({either})(,({either}))*$"},
                 f"A comma-separated subset of {', '.join(keys)}; {','.join(default)} by default. Grouped by "
                 "tag, a row with several tags counts under each, so groups may add up to more than the total.")


def _filters(*, tenant: bool) -> list[dict[str, Any]]:
    names = {"project": "A project (id; or name within the tenant).", "key": "A key (id or prefix).",
             "model": "A served model.", "tag": "Rows carrying this tag.",
             "user": "An end user (`user` of the requests); the operator's reads need `tenant` with it."}
    out = [param(name, "query", _FILTER_TEXT, what) for name, what in names.items()]
    out.insert(3, param("front_end", "query", {"type": "string", "enum": list(FRONT_ENDS)}, "A front end."))
    if tenant:
        out.insert(0, param("tenant", "query", _FILTER_TEXT, "A tenant (id or name)."))
    return out


_LIMIT = param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
               f"At most this many groups (`has_more` tells if there were more); all by default, {1000} when "
               "grouped by user.")


def usage_schemas() -> dict[str, JsonSchema]:
    def summary(money: dict[str, JsonSchema], extra: dict[str, JsonSchema]) -> JsonSchema:
        row = {"type": "object", "required": [*COUNT_FIELDS, *money],
               "properties": {**_GROUP_FIELDS, **_COUNTS, **money}}
        total = {"type": "object", "required": [*COUNT_FIELDS, *money], "properties": {**_COUNTS, **money}}
        return {"type": "object", "required": [*extra, "from", "to", "group_by", "data", "total", "has_more"],
                "properties": {**extra, "from": {"type": "string", "format": "date"},
                               "to": {"type": "string", "format": "date"},
                               "group_by": {"type": "array", "items": {"enum": list(GROUP_KEYS)}},
                               "data": {"type": "array", "items": row}, "total": total,
                               "has_more": {"type": "boolean"}}}

    return {"Usage": summary(_TENANT_MONEY, {"object": {"const": "usage"}}),
            "UsageSummary": summary(_OPERATOR_MONEY, {})}


def _focus(summary: str, security: str, description: str) -> dict[str, Any]:
    return op(summary, "usage", {200: ok("FOCUS 1.2 rows, a file to download.", media=_FOCUS_MEDIA)}, (400, 403),
              security=security, description=description, parameters=[
                  _PERIOD, param("format", "query", {"type": "string", "enum": list(FOCUS_FORMATS)},
                                 "csv (the default) or parquet."),
                  param("granularity", "query", {"type": "string", "enum": list(GRANULARITIES)},
                        "One row per day (the default) or per hour.")])


def usage_paths() -> dict[str, Any]:
    v1, admin = "TenantKey", "AdminToken"
    tenant_groups = ("day", "model", "front_end")
    return {
        "/v1/usage": {"get": op(
            "Get my usage", "usage", {200: ok("The calling key's tenant's usage, grouped.", ref("Usage"))}, (400,),
            security=v1, description="Always the calling key's tenant: a `tenant` parameter is refused.",
            parameters=[date_param("from", "First day"), date_param("to", "Last day"),
                        _group_by(TENANT_GROUP_KEYS, tenant_groups), _LIMIT, *_filters(tenant=False)])},
        "/v1/usage/export": {"get": op(
            "Export my usage", "usage", {200: ok("Ledger rows; with `group_by`, the groups over days.",
                                                 media=_EXPORT_MEDIA)}, (400,), security=v1,
            description="Without `group_by`, `from` and `to` are instants; with it, days.",
            parameters=[_FORMAT, instant_param("from", "Start"), instant_param("to", "End"),
                        _group_by(TENANT_GROUP_KEYS, tenant_groups), *_filters(tenant=False)])},
        "/v1/usage/focus": {"get": _focus("Export my usage as FOCUS", v1, "The calling key's tenant's billed usage.")},
        "/admin/usage": {"get": op(
            "Get usage across tenants", "admin", {200: ok("Sums per group.", ref("UsageSummary"))}, (400, 403),
            security=admin, parameters=[date_param("from", "First day"), date_param("to", "Last day"),
                                        _group_by(GROUP_KEYS, ("tenant",)), _LIMIT, *_filters(tenant=True)])},
        "/admin/billing/export": {"get": op(
            "Export a billing period", "admin", {200: ok("Per group, then totals.", media=_EXPORT_MEDIA)},
            (400, 403), security=admin,
            parameters=[_PERIOD, _FORMAT, _group_by(GROUP_KEYS, BILLING_GROUPS), *_filters(tenant=True)])},
        "/admin/billing/focus": {"get": _focus("Export a billing period as FOCUS", admin, "Every tenant's.")},
    }

