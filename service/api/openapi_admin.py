"""The /admin part of the OpenAPI document: tenants, keys, projects, budgets, alerts and routes.

Each schema says what the handler checks (service.api.admin*, admin_input): lengths, ranges,
enums, text Postgres can store. What depends on other records (a key's `project_id` naming one
of its tenant's projects, a budget's `key_id`) the document cannot say; those are 400s naming the
field, and tests/reliability/schemathesis.toml lists them.
"""

from __future__ import annotations

from typing import Any

from service.alerts.outbox import EVENT_STATUSES
from service.alerts.rules import EVENT_KINDS, MAX_THRESHOLDS
from service.alerts.urls import MAX_URL_LENGTH
from service.api.admin_alerts import MAX_PAGE, WEBHOOK_URL_PATTERN
from service.api.openapi_parts import (
    BOOL,
    INT,
    LIMIT,
    MAX_NAME,
    NAME_PATTERN,
    NO_NUL,
    NUMBER_OR_NULL,
    REF_PATTERN,
    REFERENCE,
    STR,
    STR_OR_NULL,
    TENANT_REF,
    JsonSchema,
    deleted,
    list_of,
    ok,
    op,
    param,
    ref,
)
from service.auth.key_lifecycle import MAX_GRACE
from service.catalog.model import FRONT_ENDS, Catalog
from service.gateway.attribution import MAX_METADATA_KEY_CHARS, MAX_METADATA_PAIRS, MAX_METADATA_VALUE_CHARS
from service.metering.budget_records import MAX_WINDOW_HOURS

ADMIN = "AdminToken"
_UUID: JsonSchema = {"type": "string", "format": "uuid"}
_TIME: JsonSchema = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: JsonSchema = {"type": ["string", "null"], "format": "date-time"}
_OPTIONAL_REF: JsonSchema = {**REFERENCE, "type": ["string", "null"]}
_DECIMAL = "A non-negative decimal, as a string such as \"0.25\" or a number"


def _decimal(integer_digits: int, places: int) -> JsonSchema:
    return {"anyOf": [{"type": "string", "pattern": f"^[0-9]{{1,{integer_digits}}}(\\.[0-9]{{1,{places}}})?$"},
                      {"type": "integer", "minimum": 0, "maximum": 10**integer_digits - 1}],
            "description": f"{_DECIMAL}: below {10**integer_digits:,} with at most {places} decimal places."}


def _tenant_schemas(models: list[str]) -> dict[str, JsonSchema]:
    fields: dict[str, JsonSchema] = {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NAME_PATTERN},
        "markup": {**_decimal(6, 6), "description": "Added to provider cost (0.25 adds 25%). " + _DECIMAL + "."},
        "allowed_models": {"type": ["array", "null"], "items": {"type": "string", "enum": models},
                           "description": "Models and pools the tenant may use; null for all."},
        "denied_front_ends": {"type": "array", "items": {"type": "string", "enum": list(FRONT_ENDS)}},
    }
    return {
        "Tenant": {"type": "object", "required": ["id", "name", "status", "markup", "allowed_models",
                                                  "denied_front_ends"],
                   "properties": {"id": _UUID, "name": STR, "status": {"enum": ["active", "disabled"]}, "markup": STR,
                                  "allowed_models": {"type": ["array", "null"], "items": STR},
                                  "denied_front_ends": {"type": "array", "items": STR}}},
        "TenantCreate": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": fields},
        "TenantPatch": {"type": "object", "additionalProperties": False, "properties": {
            **fields, "status": {"type": "string", "enum": ["active", "disabled"]}}},
        "TenantList": list_of("Tenant"),
    }


def _key_schemas(models: list[str]) -> dict[str, JsonSchema]:
    fields: dict[str, JsonSchema] = {
        "name": {"type": ["string", "null"], "maxLength": MAX_NAME, "pattern": NO_NUL},
        "rpm_limit": LIMIT, "tpm_limit": LIMIT,
        "expires_at": {**_TIME_OR_NULL, "description": "When the key stops working (UTC unless offset); null never."},
        "metadata": {"type": ["object", "null"], "maxProperties": MAX_METADATA_PAIRS,
                     "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_KEY_CHARS, "pattern": NO_NUL},
                     "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS,
                                              "pattern": NO_NUL}},
        "allowed_models": {"type": ["array", "null"], "items": {"type": "string", "enum": models},
                           "description": "Models and pools the key may use, within its project's and tenant's; "
                                          "null for all."},
        "project_id": {**_OPTIONAL_REF, "description": "One of the tenant's projects (id or name); null for none."},
    }
    most = int(MAX_GRACE.total_seconds())
    return {
        "Key": {"type": "object", "required": ["id", "tenant_id", "project_id", "prefix", "name", "rpm_limit",
                                               "tpm_limit", "allowed_models", "metadata", "created_at", "expires_at",
                                               "revoked_at", "rotated_at", "previous_prefix", "previous_expires_at"],
                "properties": {"id": _UUID, "tenant_id": _UUID, "project_id": STR_OR_NULL, "prefix": STR,
                               "name": STR_OR_NULL, "rpm_limit": {"type": ["integer", "null"]},
                               "tpm_limit": {"type": ["integer", "null"]},
                               "allowed_models": {"type": ["array", "null"], "items": STR},
                               "metadata": {"type": ["object", "null"], "additionalProperties": STR},
                               "created_at": STR, "expires_at": STR_OR_NULL, "revoked_at": STR_OR_NULL,
                               "rotated_at": STR_OR_NULL,
                               "previous_prefix": {**STR_OR_NULL, "description": "The prefix before the last rotation, "
                                                                                 "working until previous_expires_at."},
                               "previous_expires_at": STR_OR_NULL}},
        "KeyCreated": {"allOf": [ref("Key"), {"type": "object", "required": ["key"], "properties": {"key": {
            "type": "string", "description": "The plaintext key: shown this once, stored only as a hash."}}}]},
        "KeyCreate": {"type": "object", "additionalProperties": False, "properties": fields},
        "KeyPatch": {"type": "object", "additionalProperties": False, "properties": fields},
        "KeyRotate": {"type": "object", "additionalProperties": False, "properties": {"grace_seconds": {
            "type": "integer", "minimum": 0, "maximum": most,
            "description": "How long the old secret keeps working: a day by default, 0 to end it now."}}},
        "KeyList": list_of("Key"),
    }


def _project_schemas(models: list[str]) -> dict[str, JsonSchema]:
    fields: dict[str, JsonSchema] = {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NAME_PATTERN},
        "allowed_models": {"type": ["array", "null"], "items": {"type": "string", "enum": models},
                           "description": "Models and pools the project's keys may use; null for all."},
    }
    return {
        "Project": {"type": "object", "required": ["id", "tenant_id", "name", "allowed_models", "created_at",
                                                   "updated_at", "active_keys"],
                    "properties": {"id": _UUID, "tenant_id": _UUID, "name": STR,
                                   "allowed_models": {"type": ["array", "null"], "items": STR}, "created_at": STR,
                                   "updated_at": STR, "active_keys": INT}},
        "ProjectCreate": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": fields},
        "ProjectPatch": {"type": "object", "additionalProperties": False, "properties": fields},
        "ProjectList": list_of("Project"),
        "ProjectDeleted": deleted("Project"),
    }


def _budget_schemas() -> dict[str, JsonSchema]:
    common: dict[str, JsonSchema] = {
        "limit_usd": _decimal(10, 10),
        "hard": {**BOOL, "description": "Refuse requests the budget cannot cover (true, the default), or only alert."},
        "key_id": {**_OPTIONAL_REF, "description": "One of the tenant's keys (id or prefix)."},
        "project_id": {**_OPTIONAL_REF, "description": "One of the tenant's projects (id or name)."},
    }
    one_level = {"not": {"type": "object", "required": ["key_id", "project_id"],
                         "properties": {"key_id": STR, "project_id": STR}}}
    calendar = {"type": "object", "additionalProperties": False, "required": ["period", "limit_usd"],
                "properties": {**common, "period": {"type": "string", "enum": ["day", "month"]},
                               "window_hours": {"type": "null"}}}
    rolling = {"type": "object", "additionalProperties": False, "required": ["period", "limit_usd", "window_hours"],
               "properties": {**common, "period": {"const": "rolling"},
                              "window_hours": {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_HOURS}}}
    return {
        "Budget": {"type": "object", "required": ["id", "tenant_id", "level", "project_id", "key_id", "period",
                                                  "window_hours", "limit_usd", "hard", "spent_usd", "leased_usd"],
                   "properties": {"id": _UUID, "tenant_id": _UUID, "level": {"enum": ["tenant", "project", "key"]},
                                  "project_id": STR_OR_NULL, "project_name": STR_OR_NULL, "key_id": STR_OR_NULL,
                                  "key_prefix": STR_OR_NULL, "period": {"enum": ["day", "month", "rolling"]},
                                  "window_hours": {"type": ["integer", "null"]}, "limit_usd": STR,
                                  "hard": BOOL, "created_at": STR, "current_period_start": STR, "spent_usd": STR,
                                  "leased_usd": STR}},
        "BudgetPut": {"description": "A budget for the tenant, one of its projects (`project_id`) or one of its keys "
                                     "(`key_id`), never both; one per level and period (a PUT replaces it). A "
                                     "rolling budget counts the last `window_hours` hours.",
                      "allOf": [{"anyOf": [calendar, rolling]}, one_level]},
        "BudgetList": list_of("Budget"),
        "BudgetDeleted": deleted("Budget"),
    }


def _alert_schemas() -> dict[str, JsonSchema]:
    percent = {"anyOf": [{"type": "string", "pattern": "^[0-9]{1,4}(\\.[0-9]{1,2})?$"},
                         {"type": "integer", "minimum": 0, "maximum": 9999}]}
    attempt = {"type": "object", "properties": {"attempt": INT, "holder": STR_OR_NULL, "started_at": STR_OR_NULL,
                                                "ended_at": STR_OR_NULL, "status_code": {"type": ["integer", "null"]},
                                                "error": STR_OR_NULL}}
    return {
        "Webhook": {"type": "object", "required": ["id", "target", "tenant_id", "url", "source", "created_at",
                                                   "updated_at"],
                    "properties": {"id": _UUID, "target": {"enum": ["tenant", "operator"]}, "tenant_id": STR_OR_NULL,
                                   "url": STR, "source": STR, "created_at": STR, "updated_at": STR,
                                   "secret": {**STR, "description": "The signing secret: only when it is new."}}},
        "WebhookPut": {"type": "object", "additionalProperties": False, "required": ["url"], "properties": {
            "url": {"type": "string", "maxLength": MAX_URL_LENGTH,
                    "pattern": WEBHOOK_URL_PATTERN,
                    "description": "Where alerts are POSTed. A tenant's may not reach an internal address unless "
                                   "the operator allows it (SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS)."},
            "rotate_secret": {**BOOL, "description": "Issue a new signing secret (returned once)."}}},
        "WebhookDeleted": deleted("Webhook"),
        "Thresholds": {"type": "object", "required": ["budget_id", "thresholds", "default"],
                       "properties": {"budget_id": _UUID, "thresholds": {"type": "array", "items": STR},
                                      "default": BOOL}},
        "ThresholdsPut": {"type": "object", "additionalProperties": False, "required": ["thresholds"], "properties": {
            "thresholds": {"type": ["array", "null"], "maxItems": MAX_THRESHOLDS, "items": percent,
                           "description": "Percentages of the limit that alert once per period when crossed, "
                                          "[] for none, null for the default."}}},
        "AlertEvent": {"type": "object", "required": ["id", "object", "type", "tenant_id", "created_at", "status",
                                                      "data", "deliveries"],
                       "properties": {"id": _UUID, "object": {"const": "event"}, "type": {"enum": list(EVENT_KINDS)},
                                      "tenant_id": STR, "created_at": STR, "status": {"enum": list(EVENT_STATUSES)},
                                      "data": {"type": "object"},
                                      "deliveries": {"type": "array", "items": {"type": "object", "properties": {
                                          "attempt_log": {"type": "array", "items": attempt}}}}}},
        "AlertEventList": list_of("AlertEvent", has_more=BOOL),
    }


def _route_schemas() -> dict[str, JsonSchema]:
    capacity = {"type": "object", "required": ["group", "route_in_flight", "group_in_flight", "concurrency_limit",
                                               "calls_last_minute", "rpm_limit", "keys", "has_room"],
                "properties": {"group": {**STR, "description": "The limit group: `xpay` for every xpay route (its "
                                                                "keys' limits), else the route itself."},
                               "route_in_flight": INT, "group_in_flight": INT,
                               "concurrency_limit": {"type": ["integer", "null"], "description": "Null: unlimited."},
                               "calls_last_minute": INT, "rpm_limit": {"type": ["integer", "null"]},
                               "keys": INT, "has_room": BOOL}}
    quotes = {"type": ["object", "null"], "description": (
        "Null until a quoted call on this route has been charged. `bias`: charged over quoted, as learned; "
        "`spread`: of its log; `trust`: how far ranking believes a quote over the per-token estimate; "
        "`input_per_mtok`/`output_per_mtok`: the USD per million tokens its charges have followed (null "
        "until enough calls show them), which then price the route at the expected answer length."),
        "properties": {"bias": {"type": "number"}, "spread": {"type": "number"}, "observed": {"type": "number"},
                       "trust": {"type": "number"}, "input_per_mtok": NUMBER_OR_NULL,
                       "output_per_mtok": NUMBER_OR_NULL}}
    route = {"type": "object", "required": ["route", "model", "front_end", "circuit", "open_for_seconds", "probing",
                                            "recent_failures", "recent_attempts", "window_seconds", "capacity"],
             "properties": {"route": {**STR, "description": "`front_end:model`."}, "model": STR,
                            "front_end": {"enum": list(FRONT_ENDS)},
                            "circuit": {"enum": ["closed", "half_open", "open"]},
                            "open_for_seconds": {"type": "number", "minimum": 0}, "probing": BOOL,
                            "recent_failures": INT, "recent_attempts": INT, "window_seconds": {"type": "number"},
                            "latency_seconds": NUMBER_OR_NULL, "ttft_seconds": NUMBER_OR_NULL,
                            "tokens_per_second": NUMBER_OR_NULL, "capacity": capacity, "quotes": quotes}}
    return {
        "RouteHealth": route,
        "RouteHealthList": list_of("RouteHealth", scope={"const": "process"}, process_id=INT),
        "RouteReset": {"type": "object", "additionalProperties": False, "properties": {"route": {
            "type": ["string", "null"], "minLength": 1, "maxLength": MAX_NAME, "pattern": NO_NUL,
            "description": "One route's name; null or absent for every route."}}},
    }


def admin_schemas(catalog: Catalog) -> dict[str, JsonSchema]:
    models = sorted(catalog.models) + sorted(catalog.pools)
    return {**_tenant_schemas(models), **_key_schemas(models), **_project_schemas(models), **_budget_schemas(),
            **_alert_schemas(), **_route_schemas()}


def _path_ref(name: str, what: str, schema: JsonSchema | None = None) -> dict[str, Any]:
    return param(name, "path", schema or {"type": "string", "minLength": 1, "maxLength": MAX_NAME,
                                          "pattern": REF_PATTERN}, what)


_PER_PROCESS = ("Circuits and capacity slots live in each gateway process's memory: this reads (or resets) the "
                "process that answers, named by `process_id`. Behind several workers, repeat it to reach each.")


def _tenants_and_keys() -> dict[str, Any]:
    key = _path_ref("key", "A key's id or prefix.")
    project = _path_ref("project", "A project's id.", _UUID)
    budget = _path_ref("budget", "A budget's id.", _UUID)
    tenant = [TENANT_REF]
    return {
        "/admin/tenants": {
            "get": op("List tenants", "admin", {200: ok("Every tenant.", ref("TenantList"))}, (403,), security=ADMIN),
            "post": op("Create a tenant", "admin", {201: ok("The tenant.", ref("Tenant"))}, (403, 409),
                       security=ADMIN, body=ref("TenantCreate")),
        },
        "/admin/tenants/{tenant}": {
            "get": op("Get a tenant", "admin", {200: ok("The tenant.", ref("Tenant"))}, (400, 403, 404),
                      security=ADMIN, parameters=tenant),
            "patch": op("Update a tenant", "admin", {200: ok("The tenant.", ref("Tenant"))}, (403, 404, 409),
                        security=ADMIN, parameters=tenant, body=ref("TenantPatch")),
        },
        "/admin/tenants/{tenant}/keys": {
            "get": op("List a tenants keys", "admin", {200: ok("Its keys.", ref("KeyList"))}, (400, 403, 404),
                      security=ADMIN, parameters=tenant),
            "post": op("Create a key", "admin", {201: ok("The key, with its plaintext.", ref("KeyCreated"))},
                       (403, 404), security=ADMIN, parameters=tenant, body=ref("KeyCreate"), body_required=False),
        },
        "/admin/keys/{key}": {
            "get": op("Get a key", "admin", {200: ok("The key (never its secret).", ref("Key"))}, (400, 403, 404),
                      security=ADMIN, parameters=[key]),
            "patch": op("Update a key", "admin", {200: ok("The key.", ref("Key"))}, (403, 404), security=ADMIN,
                        parameters=[key], body=ref("KeyPatch"),
                        description="Holds on every process from the next request."),
            "delete": op("Revoke a key", "admin", {200: ok("The revoked key.", ref("Key"))}, (400, 403, 404),
                         security=ADMIN, parameters=[key],
                         description="The key stops authenticating at once, on every process. Its record is "
                                     "kept, and GET shows it with `revoked_at`: usage rows and billing "
                                     "exports name it."),
        },
        "/admin/keys/{key}/rotate": {"post": op(
            "Rotate a key", "admin", {201: ok("The key with its new secret, shown this once.", ref("KeyCreated"))},
            (403, 404, 409), security=ADMIN, parameters=[key], body=ref("KeyRotate"), body_required=False)},
        "/admin/tenants/{tenant}/projects": {
            "get": op("List a tenants projects", "admin", {200: ok("Its projects.", ref("ProjectList"))},
                      (400, 403, 404), security=ADMIN, parameters=tenant),
            "post": op("Create a project", "admin", {201: ok("The project.", ref("Project"))}, (403, 404, 409),
                       security=ADMIN, parameters=tenant, body=ref("ProjectCreate")),
        },
        "/admin/projects/{project}": {
            "get": op("Get a project", "admin", {200: ok("The project.", ref("Project"))}, (403, 404),
                      security=ADMIN, parameters=[project]),
            "patch": op("Update a project", "admin", {200: ok("The project.", ref("Project"))}, (403, 404, 409),
                        security=ADMIN, parameters=[project], body=ref("ProjectPatch")),
            "delete": op("Delete a project", "admin", {200: ok("The deleted project, with its budgets.",
                                                              ref("ProjectDeleted"))}, (403, 404, 409),
                         security=ADMIN, parameters=[project],
                         description="Refused (409) while a live key belongs to it."),
        },
        "/admin/projects/{project}/budgets": {"get": op(
            "List a projects budgets", "admin", {200: ok("Its budgets.", ref("BudgetList"))}, (403, 404),
            security=ADMIN, parameters=[project])},
        "/admin/tenants/{tenant}/budgets": {
            "get": op("List a tenants budgets", "admin", {200: ok("Its budgets at every level.", ref("BudgetList"))},
                      (400, 403, 404), security=ADMIN, parameters=tenant),
            "put": op("Set a budget", "admin", {200: ok("The budget, replaced.", ref("Budget")),
                                                201: ok("The budget, created.", ref("Budget"))},
                      (403, 404), security=ADMIN, parameters=tenant, body=ref("BudgetPut")),
        },
        "/admin/budgets/{budget}": {"delete": op(
            "Delete a budget", "admin", {200: ok("The deleted budget.", ref("BudgetDeleted"))}, (400, 403, 404),
            security=ADMIN, parameters=[budget])},
        "/admin/budgets/{budget}/alerts": {
            "get": op("Get a budgets alert thresholds", "alerts", {200: ok("Its thresholds.", ref("Thresholds"))},
                      (400, 403, 404), security=ADMIN, parameters=[budget]),
            "put": op("Set a budgets alert thresholds", "alerts", {200: ok("Its thresholds.", ref("Thresholds"))},
                      (403, 404), security=ADMIN, parameters=[budget], body=ref("ThresholdsPut")),
        },
    }


def _alerts_and_routes() -> dict[str, Any]:
    webhook_ok = {200: ok("The webhook, re-pointed.", ref("Webhook")), 201: ok("The webhook, with its new secret.",
                                                                             ref("Webhook"))}
    event = _path_ref("event", "An alert event's id.", _UUID)
    events = [param("tenant", "query", REFERENCE, "Only this tenant's events (id or name)."),
              param("type", "query", {"type": "string", "enum": list(EVENT_KINDS)}, "Only events of this type."),
              param("status", "query", {"type": "string", "enum": list(EVENT_STATUSES)}, "Only events in this state."),
              param("before", "query", _UUID, "The last event id of the previous page: newest first."),
              param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "50 by default.")]
    operator = ("Refused (409) while SWITCHYARD_ALERT_WEBHOOK_URL sets the operator's webhook.")
    return {
        "/admin/tenants/{tenant}/alerts/webhook": {
            "put": op("Set a tenants alert webhook", "alerts", webhook_ok, (403, 404), security=ADMIN,
                      parameters=[TENANT_REF], body=ref("WebhookPut")),
            "get": op("Get a tenants alert webhook", "alerts", {200: ok("The webhook.", ref("Webhook"))},
                      (403, 404), security=ADMIN, parameters=[TENANT_REF]),
            "delete": op("Delete a tenants alert webhook", "alerts", {200: ok("The deleted webhook.",
                                                                            ref("WebhookDeleted"))},
                         (403, 404), security=ADMIN, parameters=[TENANT_REF]),
        },
        "/admin/alerts/webhook": {
            "put": op("Set the operators alert webhook", "alerts", webhook_ok, (403, 409), security=ADMIN,
                      body=ref("WebhookPut"), description=operator),
            "get": op("Get the operators alert webhook", "alerts", {200: ok("The webhook.", ref("Webhook"))},
                      (403, 404), security=ADMIN),
            "delete": op("Delete the operators alert webhook", "alerts",
                         {200: ok("The deleted webhook.", ref("WebhookDeleted"))}, (403, 404, 409), security=ADMIN,
                         description=operator),
        },
        "/admin/alerts/events": {"get": op(
            "List alert events", "alerts", {200: ok("Events with their deliveries, newest first.",
                                                    ref("AlertEventList"))},
            (400, 403, 404), security=ADMIN, parameters=events)},
        "/admin/alerts/events/{event}": {"get": op(
            "Get an alert event", "alerts", {200: ok("The event, each delivery with its attempts.", ref("AlertEvent"))},
            (400, 403, 404), security=ADMIN, parameters=[event])},
        "/admin/routes": {"get": op(
            "List routes health", "routes", {200: ok("Every catalog route's circuit, recent failures and capacity.",
                                                     ref("RouteHealthList"))},
            (403,), security=ADMIN, description=_PER_PROCESS)},
        "/admin/routes/reset": {"post": op(
            "Reset route circuits", "routes", {200: ok("The routes reset, as they now stand.", ref("RouteHealthList"))},
            (403, 404), security=ADMIN, body=ref("RouteReset"), body_required=False,
            description="Closes the circuit of one route (`route`) or of every route and forgets its recent "
                        "failures. " + _PER_PROCESS)},
    }


def admin_paths() -> dict[str, Any]:
    return {**_tenants_and_keys(), **_alerts_and_routes()}
