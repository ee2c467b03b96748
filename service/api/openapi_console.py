"""The /console part of the OpenAPI document: the page, its files, sign-in and the JSON views.

The views authenticate with the session cookie a sign-in sets (HttpOnly, SameSite=Strict, path
/console); a sign-in or sign-out also needs the anti-CSRF header, and any console request a browser
marks as cross-origin is refused with 403 (service.console.guard).
"""

from __future__ import annotations

from typing import Any

from service.api.openapi_parts import (
    BOOL,
    INT,
    MONEY,
    STR,
    STR_OR_NULL,
    JsonSchema,
    date_param,
    list_of,
    ok,
    op,
    param,
    ref,
)
from service.api.usage import MAX_FILTER_CHARS
from service.console.assets import ASSETS
from service.console.guard import COOKIE, CSRF_HEADER
from service.console.handlers import MAX_SECRET_CHARS
from service.console.views import SPEND_DIMENSIONS

SESSION = "ConsoleSession"
SECURITY_SCHEME = {"type": "apiKey", "in": "cookie", "name": COOKIE,
                   "description": "The console's session, set by POST /console/api/session."}

_SECRET = {"type": "string", "minLength": 1, "maxLength": MAX_SECRET_CHARS, "pattern": "\\S"}
_CSRF = param(CSRF_HEADER, "header", {"type": "string", "minLength": 1},
              "The anti-CSRF token: the session's `csrf_token` once signed in, any value before.", required=True)
_DAY: JsonSchema = {"type": "string", "format": "date"}
_HEAD: dict[str, JsonSchema] = {"from": _DAY, "to": _DAY, "tenant_id": STR_OR_NULL}
_SUMS = {"type": "object", "required": ["requests", "billed_usd", "direct_billed_usd", "savings_usd",
                                        "savings_percent"],
         "properties": {"requests": INT, "billed_usd": MONEY, "direct_billed_usd": MONEY, "savings_usd": MONEY,
                        "savings_percent": {**STR_OR_NULL, "description": "Null when nothing had a direct price."}}}


def _view(name: str, fields: dict[str, JsonSchema], *, head: bool = True) -> JsonSchema:
    properties = {**(_HEAD if head else {"tenant_id": STR_OR_NULL}), "view": {"const": name}, **fields}
    return {"type": "object", "required": list(properties), "properties": properties}


def _rows(**fields: JsonSchema) -> JsonSchema:
    return {"type": "array", "items": {"type": "object", "required": list(fields), "properties": fields}}


def console_schemas() -> dict[str, JsonSchema]:
    counts = {"requests": INT, "prompt_tokens": INT, "completion_tokens": INT}
    return {
        "ConsoleSignIn": {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
                          "properties": {"api_key": _SECRET, "admin_token": _SECRET},
                          "description": "Either a tenant's API key or the operator's admin token."},
        "ConsoleSession": {"type": "object", "required": ["object", "kind", "tenant", "key_prefix", "expires_at",
                                                          "csrf_token"],
                           "properties": {"object": {"const": "console.session"},
                                          "kind": {"enum": ["tenant", "operator"]},
                                          "tenant": {"type": ["object", "null"], "properties": {"id": STR,
                                                                                                "name": STR}},
                                          "key_prefix": STR_OR_NULL, "expires_at": STR, "csrf_token": STR}},
        "ConsoleSignedOut": {"type": "object", "required": ["object", "signed_out"],
                             "properties": {"object": {"const": "console.session"}, "signed_out": {"const": True}}},
        "ConsoleTenant": {"type": "object", "required": ["id", "name", "status"],
                          "properties": {"id": STR, "name": STR, "status": STR}},
        "ConsoleSpend": _view("spend", {
            "by": {"enum": list(SPEND_DIMENSIONS)}, "days": {"type": "array", "items": STR},
            "groups_overlap": BOOL,
            "groups": _rows(key=STR, label=STR, billed_usd=MONEY, points={"type": "array", "items": MONEY}),
            "total": {"type": "object", "required": ["billed_usd"], "properties": {"billed_usd": MONEY}}}),
        "ConsoleSavings": _view("savings", {
            "total": _SUMS, "days": {"type": "array", "items": _SUMS},
            "by_model": {"type": "array", "items": _SUMS}, "by_front_end": {"type": "array", "items": _SUMS}}),
        "ConsoleBudgets": _view("budgets", {
            "budgets": {"type": "array", "items": {"allOf": [ref("Budget"), {
                "type": "object", "required": ["used_usd", "used_percent", "thresholds", "alerts"],
                "properties": {"used_usd": MONEY, "used_percent": STR_OR_NULL,
                               "thresholds": {"type": "array", "items": STR},
                               "alerts": {"type": "array", "items": {"type": "object"}}}}]}},
            "spikes": {"type": "array", "items": {"type": "object"}}}, head=False),
        "ConsoleTop": _view("top", {"keys": _rows(key_id=STR_OR_NULL, key_prefix=STR_OR_NULL, key_name=STR_OR_NULL,
                                                  billed_usd=MONEY, **counts)}),
        "ConsoleUsers": _view("users", {"users": _rows(user=STR_OR_NULL, billed_usd=MONEY, **counts)}),
        "ConsoleRequests": _view("requests", {"requests": _rows(
            request_id=STR, attempt=INT, started_at=STR, route=STR_OR_NULL, status=STR, billed_usd=MONEY,
            direct_billed_usd={**MONEY, "type": ["string", "null"]}, estimated=BOOL,
            duration_ms={"type": ["integer", "null"]}, tags={"type": "array", "items": STR})}),
        "ConsoleTenantList": list_of("ConsoleTenant"),
    }


def _range(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    tenant = param("tenant", "query", {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_CHARS,
                                       "pattern": "^[^\\u0000]*$"},
                   "The operator's pick of one tenant (id or name); refused in a tenant's session.")
    return [date_param("from", "First day"), date_param("to", "Last day"), tenant, *extra]


def _get(summary: str, schema: str, description: str, errors: tuple[int, ...] = (400, 403),
         parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": op(summary, "console", {200: ok(description, ref(schema))}, errors, security=SESSION,
                      parameters=parameters if parameters is not None else _range())}


def console_paths() -> dict[str, Any]:
    names = sorted(ASSETS)
    media = sorted({kind for _, kind in ASSETS.values()})
    return {
        "/console": {"get": op("The console page", "console", {200: ok("The page.", media={
            "text/html": {"type": "string"}})}, ())},
        "/console/static/{name}": {"get": op(
            "A console file", "console", {200: ok("The file.", media={kind: {"type": "string"} for kind in media})},
            (404,), parameters=[param("name", "path", {"type": "string", "enum": names}, "The file's name."),
                                param("v", "query", {"type": "string"},
                                      "The file's version: its URL is cached for good when it is current.")])},
        "/console/api/session": {
            "post": op("Sign in to the console", "console", {200: ok("The session; its cookie is set.",
                                                                     ref("ConsoleSession"))},
                       (401, 403, 503), parameters=[_CSRF], body=ref("ConsoleSignIn")),
            "get": op("The console session", "console", {200: ok("Who is signed in.", ref("ConsoleSession"))},
                      (403,), security=SESSION),
            "delete": op("Sign out of the console", "console", {200: ok("Signed out; the cookie is cleared.",
                                                                        ref("ConsoleSignedOut"))},
                         (403, 503), parameters=[_CSRF]),
        },
        "/console/api/tenants": _get("Console tenants", "ConsoleTenantList", "The tenants the operator may pick.",
                                     (403,), []),
        "/console/api/spend": _get("Console spend", "ConsoleSpend", "Billed spend per day for each group.",
                                   parameters=_range(param("by", "query", {"type": "string",
                                                                           "enum": list(SPEND_DIMENSIONS)},
                                                           "The grouping; model by default. Tag needs a tenant."))),
        "/console/api/savings": _get("Console savings", "ConsoleSavings", "Billed against always-Baseten-direct."),
        "/console/api/budgets": _get("Console budgets", "ConsoleBudgets", "Each budget's period, thresholds, alerts."),
        "/console/api/top": _get("Console top keys", "ConsoleTop", "The keys that spent the most."),
        "/console/api/users": _get("Console top users", "ConsoleUsers",
                                   "The end users that spent the most: one tenant at a time."),
        "/console/api/requests": _get("Console requests", "ConsoleRequests", "The newest attempts.",
                                      parameters=_range(param("limit", "query", {"type": "integer", "minimum": 1,
                                                                                 "maximum": 500}, "50 by default."))),
    }
