"""Reading the dashboards, and running their SQL the way Grafana's Postgres data source does:
macros expanded, variables evaluated in order (their own queries give "All" its values), values
quoted as Grafana quotes them, custom "All" values passed through unformatted."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PROM_REF = {"type": "prometheus", "uid": "${datasource}"}
PG_TYPE = "grafana-postgresql-datasource"
PG_REF = {"type": PG_TYPE, "uid": "${postgres}"}
MIXED_REF = {"type": "datasource", "uid": "-- Mixed --"}

# The time range the SQL tests pretend Grafana has selected, and the interval it picked.
RANGE_FROM, RANGE_TO = "2026-11-01T00:00:00Z", "2026-11-30T23:59:59Z"
INTERVAL, INTERVAL_MS = "1h", 3_600_000
ALL = None  # a selection of "All"

Selection = dict[str, list[str] | None]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return dashboard["templating"]["list"]


def pg_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in variables(dashboard) if v["type"] == "query" and v["datasource"] == PG_REF]


def sql_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["rawSql"] for _, t in targets(dashboard) if "rawSql" in t]
    return queries + [v["query"] for v in pg_variables(dashboard)]


def dashboard_named(uid: str) -> dict[str, Any]:
    return next(d for d in map(load, DASHBOARDS) if d["uid"] == uid)


def panel_sql(dashboard: dict[str, Any], title: str) -> str:
    panel = next(p for p in all_panels(dashboard) if p["title"] == title)
    return next(t["rawSql"] for t in panel["targets"] if "rawSql" in t)


# ---------------------------------------------------------------- Grafana's expansion


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _regex_escape(value: str) -> str:
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def _macros(sql: str) -> str:
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{RANGE_FROM}' AND '{RANGE_TO}'", sql)
    sql = sql.replace("$__interval_ms", str(INTERVAL_MS)).replace("$__interval", INTERVAL)
    return re.sub(r"\$__timeGroupAlias\(([^,]+),\s*'?1h'?\)",
                  r'floor(extract(epoch from \1)/3600)*3600 AS "time"', sql)


def _substitute(sql: str, name: str, values: list[str], all_value: str | None) -> str:
    """`${name:regex}`, `${name}` and `$name`, as the Postgres data source formats them."""
    def regex(_: re.Match[str]) -> str:
        if all_value is not None:
            return all_value
        escaped = [_regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    def plain(_: re.Match[str]) -> str:
        if all_value is not None:
            return all_value
        return ",".join(_quote(v) for v in values)

    sql = re.sub(rf"\$\{{{name}:regex\}}", regex, sql)
    return re.sub(rf"\$\{{{name}\}}|\${name}\b", plain, sql)


async def expand(conn: asyncpg.Connection, dashboard: dict[str, Any], sql: str,
                 selection: Selection | None = None) -> str:
    """The SQL Grafana would send for `sql` with these variable selections (absent means All)."""
    selection = selection or {}
    resolved: list[tuple[str, list[str], str | None]] = []
    for var in variables(dashboard):
        if var["type"] not in ("query", "custom") or (var["type"] == "query" and var["datasource"] != PG_REF):
            continue
        picked = selection.get(var["name"], ALL)
        all_value = var.get("allValue") if picked is ALL else None
        if picked is ALL:
            if var["type"] == "custom":
                picked = [v.strip() for v in var["query"].split(",")]
            else:
                options_sql = _macros(var["query"])
                for name, values, allv in resolved:
                    options_sql = _substitute(options_sql, name, values, allv)
                picked = [str(r["__value"]) for r in await conn.fetch(options_sql)]
        resolved.append((var["name"], picked, all_value))
    sql = _macros(sql)
    for name, values, all_value in resolved:
        sql = _substitute(sql, name, values, all_value)
    assert not re.search(r"\$[{\w]", sql), f"unexpanded macro or variable in {sql!r}"
    return sql


# ---------------------------------------------------------------- known rows


def _day(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


async def seed(conn: asyncpg.Connection) -> dict[str, Any]:
    """Known rows, replacing whatever an earlier test left, so tests run in any order."""
    await conn.execute("TRUNCATE usage_daily, usage_events, tenants CASCADE")
    tenants = [uuid.uuid4(), uuid.uuid4()]
    for n, tenant in enumerate(tenants):
        await conn.execute("INSERT INTO tenants (id, name, status) VALUES ($1, $2, 'active')", tenant, f"tenant-{n}")
    gpt, glm = "openai/gpt-oss-120b", "zai-org/GLM-5.2"
    rows = [
        (date(2026, 11, 3), tenants[0], gpt, "baseten", 10, Decimal("0.0123456789"), Decimal("0.0148148147")),
        (date(2026, 11, 4), tenants[0], gpt, "xpay", 5, Decimal("0.05"), Decimal("0.06")),
        (date(2026, 11, 4), tenants[1], glm, "orthogonal", 2, Decimal("0.2"), Decimal("0.25")),
        # Outside the selected range: must not count.
        (date(2026, 10, 31), tenants[0], gpt, "baseten", 99, Decimal(9), Decimal(9)),
    ]
    await conn.executemany(
        "INSERT INTO usage_daily (day, tenant_id, served_model, front_end, requests, attempts,"
        " prompt_tokens, completion_tokens, provider_cost_usd, billed_usd)"
        " VALUES ($1, $2, $3, $4, $5, $5, 1000, 100, $6, $7)",
        rows,
    )
    projects = {"web": uuid.uuid4(), "batch": uuid.uuid4(), "b-web": uuid.uuid4()}
    for name, pid, tenant in (("web", projects["web"], tenants[0]), ("batch", projects["batch"], tenants[0]),
                              ("web", projects["b-web"], tenants[1])):
        await conn.execute("INSERT INTO projects (id, tenant_id, name) VALUES ($1, $2, $3)", pid, tenant, name)
    keys = {"web-prod": uuid.uuid4(), "loose": uuid.uuid4(), "b": uuid.uuid4()}
    for (label, kid), tenant, project, name in zip(
            keys.items(), (tenants[0], tenants[0], tenants[1]), (projects["web"], None, projects["b-web"]),
            ("web-prod", None, "b-key"), strict=True):
        await conn.execute("INSERT INTO api_keys (id, tenant_id, project_id, prefix, key_hash, name)"
                           " VALUES ($1, $2, $3, $4, $5, $6)", kid, tenant, project, f"sk-sy-{label[:4]}",
                           b"\x00" * 32, name)
    at = _day(date(2026, 11, 3)) + timedelta(hours=10)
    events = [
        # request, attempt, tenant, key, project, tags, user, api, status, billed, direct, provider, when
        ("r1", 1, tenants[0], keys["web-prod"], projects["web"], ["prod", "search"], "alice", "chat", "ok",
         "0.0148148147", "0.02", "0.0123456789", at),
        ("r2", 1, tenants[0], keys["loose"], None, [], None, "messages", "error", "0", None, "0",
         at + timedelta(days=1)),
        ("r2", 2, tenants[0], keys["loose"], None, [], None, "messages", "ok", "0.06", "0.05", "0.05",
         at + timedelta(days=1, seconds=1)),
        ("r3", 1, tenants[1], keys["b"], projects["b-web"], ["prod"], "bob", "responses", "ok", "0.25", None,
         "0.2", at + timedelta(days=1, hours=2)),
        # Outside the selected range: must not count.
        ("r4", 1, tenants[0], keys["web-prod"], projects["web"], ["prod"], "alice", "chat", "ok", "9", "10", "8",
         _day(date(2026, 10, 31))),
    ]
    await conn.executemany(
        "INSERT INTO usage_events (request_id, attempt, tenant_id, key_id, project_id, tags, end_user, api,"
        " status, billed_usd, direct_billed_usd, provider_cost_usd, started_at, ended_at, requested_model,"
        " served_model, front_end, route, stream, price_version, cost_source, prompt_tokens, completion_tokens,"
        " error_code)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::numeric, $11::numeric, $12::numeric, $13, $13,"
        " 'auto', 'openai/gpt-oss-120b', 'baseten', 'baseten:gpt', false, 'v1', 'computed', 1000, 100,"
        " CASE WHEN $9 = 'error' THEN 'upstream_server' END)",
        events,
    )
    return {"tenants": [str(t) for t in tenants], "projects": {k: str(v) for k, v in projects.items()},
            "keys": keys}
