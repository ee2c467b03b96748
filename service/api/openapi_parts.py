"""The pieces every part of the OpenAPI document is built from: the error object and its responses,
operations, parameters and the schemas several parts share (service.api.openapi assembles them)."""

from __future__ import annotations

from typing import Any

from service.api.openapi_chat import NO_NUL, JsonSchema
from service.api.usage import MAX_QUERY_CHARS
from service.errors import is_permanent

__all__ = ["NO_NUL", "JsonSchema"]

STATUS_TEXT = {
    400: "The request is malformed or a parameter is invalid (`param` names it).",
    401: "No credentials, or wrong ones.",
    402: "A hard budget cannot cover the request's worst-case cost, or every route costs more than "
         "`provider.max_cost_usd`.",
    403: "Not allowed: a model outside the tenant's allow-list, the admin API disabled, or a console "
         "request from another origin or without its anti-CSRF token.",
    404: "Not found.",
    408: "The request body stopped arriving before it was complete; the connection is closed.",
    409: "Conflicts with an existing resource or its state.",
    413: "The request body is larger than the gateway accepts.",
    415: "The body is not sent as application/json.",
    429: "A rate limit of the key (or of every upstream) was reached; retry after `retry-after`.",
    431: "The request headers are larger than the gateway accepts.",
    500: "An error inside the gateway.",
    502: "Every route failed upstream.",
    503: "Unavailable for now (the database, or every route at capacity); retry after `retry-after`.",
    504: "Every route timed out upstream.",
}

ERROR: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {"type": ["string", "null"]},
            "code": {"type": ["string", "null"]},
        },
    }},
}

REQUEST_ID = {"description": "The client's x-request-id when it sent a sane one, else a new id.", "required": True,
              "schema": {"type": "string"}}
_SHOULD_NOT_RETRY = {"description": "A permanent failure: the OpenAI SDKs do not retry it.", "required": True,
                     "schema": {"type": "string", "const": "false"}}
_RETRY_AFTER = {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}

STR: JsonSchema = {"type": "string"}
INT: JsonSchema = {"type": "integer"}
BOOL: JsonSchema = {"type": "boolean"}
NUMBER_OR_NULL: JsonSchema = {"type": ["number", "null"]}
STR_OR_NULL: JsonSchema = {"type": ["string", "null"]}
MONEY: JsonSchema = {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$",
                     "description": "US dollars as an exact decimal string."}
# What Python's str.strip() removes (admin_input.name_value refuses a name it would change), spelled
# out: JSON Schema's \\s is ECMA's, which differs (it has U+FEFF, not U+001C-U+001F or U+0085).
_SPACE = ("\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
          "\\u205f\\u3000")
NAME_PATTERN = f"^[^{_SPACE}\\u0000]([^\\u0000]*[^{_SPACE}\\u0000])?$"
REF_PATTERN = "^[^\\u0000/]+$"
MAX_NAME = 200
LIMIT: JsonSchema = {"type": ["integer", "null"], "minimum": 1, "maximum": 2**31 - 1}
# A name or id the server looks up: any storable text of at most MAX_NAME characters.
REFERENCE: JsonSchema = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NO_NUL}


def ref(name: str) -> JsonSchema:
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(item: str, **extra: JsonSchema) -> JsonSchema:
    return {"type": "object", "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref(item)}, **extra}}


def deleted(schema: str) -> JsonSchema:
    """A deleted resource as the API returns it: the resource with `deleted: true`."""
    return {"allOf": [ref(schema), {"type": "object", "required": ["deleted"],
                                    "properties": {"deleted": {"const": True}}}]}


def error_response(status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"x-request-id": REQUEST_ID}
    if is_permanent(status):
        headers["x-should-retry"] = _SHOULD_NOT_RETRY
    if status in (429, 503):
        headers["retry-after"] = _RETRY_AFTER
    return {"description": STATUS_TEXT[status], "headers": headers,
            "content": {"application/json": {"schema": ref("Error")}}}


def ok(description: str, schema: JsonSchema | None = None, *, media: dict[str, JsonSchema] | None = None
       ) -> dict[str, Any]:
    content = media if media is not None else {"application/json": schema or {"type": "object"}}
    return {"description": description, "headers": {"x-request-id": REQUEST_ID},
            "content": {kind: {"schema": s} for kind, s in content.items()}}


def param(name: str, where: str, schema: JsonSchema, description: str, *, required: bool = False
          ) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


# How the Messages API shows the gateway's statuses (service.inbound.anthropic_errors).
ANTHROPIC_STATUS = {502: 500, 503: 529}
_ANTHROPIC_TEXT = {**STATUS_TEXT, 529: "Overloaded: every route at capacity, or the database away; retry."}


def anthropic_error_response(status: int) -> dict[str, Any]:
    return {"description": _ANTHROPIC_TEXT[status], "headers": {"x-request-id": REQUEST_ID},
            "content": {"application/json": {"schema": ref("AnthropicError")}}}


def operation_id(summary: str) -> str:
    return "".join(word.capitalize() for word in summary.replace("'", "").split()[:6])


def op(summary: str, tag: str, answers: dict[int, dict[str, Any]], errors: tuple[int, ...], *,
       security: str | None = None, parameters: list[dict[str, Any]] | None = None,
       body: JsonSchema | None = None, body_required: bool = True, example: Any = None,
       anthropic: bool = False, description: str | None = None) -> dict[str, Any]:
    statuses = set(errors) | {431, 500}
    if security is not None:
        statuses |= {401, 503}
    if body is not None:
        statuses |= {400, 408, 413, 415}
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "operationId": operation_id(summary),
                                 "responses": {str(s): r for s, r in sorted(answers.items())}}
    if description is not None:
        operation["description"] = description
    for status in sorted(statuses):
        if anthropic and status != 431:  # 431 comes from a layer below every API: OpenAI's shape
            shown = ANTHROPIC_STATUS.get(status, status)
            operation["responses"][str(shown)] = {"$ref": f"#/components/responses/A{shown}"}
        else:
            operation["responses"][str(status)] = {"$ref": f"#/components/responses/E{status}"}
    operation["security"] = [{security: []}] if security else []
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        media: dict[str, Any] = {"schema": body}
        if example is not None:
            media["example"] = example
        operation["requestBody"] = {"required": body_required, "content": {"application/json": media}}
    return operation


def date_param(name: str, what: str) -> dict[str, Any]:
    return param(name, "query", {"type": "string", "format": "date", "maxLength": MAX_QUERY_CHARS},
                 f"{what}, a UTC day (YYYY-MM-DD) from 0001-01-02 to 9999-12-30; the range spans at most 366 "
                 "days and `to` is not before `from`.")


def instant_param(name: str, what: str) -> dict[str, Any]:
    return param(name, "query", {"anyOf": [{"type": "string", "format": "date"},
                                           {"type": "string", "format": "date-time"}], "maxLength": MAX_QUERY_CHARS},
                 f"{what}: an ISO 8601 date or date-time (UTC unless it names an offset); the range spans at "
                 "most 366 days and `to` is after `from`.")


TENANT_REF = param("tenant", "path", {"type": "string", "minLength": 1, "maxLength": MAX_NAME,
                                      "pattern": REF_PATTERN}, "A tenant's id or name.")
