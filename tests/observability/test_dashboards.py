"""Grafana dashboards and provisioning: structure, data source references, every PromQL
expression against the real metric registry and promtool, every SQL query against a
freshly migrated Postgres."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.observability.grafana_helpers import (
    DASHBOARDS,
    MIXED_REF,
    PG_REF,
    PG_TYPE,
    PROM_REF,
    ROOT,
    all_panels,
    dashboard_named,
    expand,
    load,
    panel_sql,
    targets,
    variables,
)
from tests.observability.promql import analyse_promql, exported_series

DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
EXPECTED_UIDS = {
    "switchyard-overview", "switchyard-cost", "switchyard-billing", "switchyard-metering", "switchyard-projects",
}

GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")


def prometheus_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for _, t in targets(dashboard) if "expr" in t]


def grafana_substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """What Grafana sends for the "All" selection over a 5 minute step."""
    for interval in GRAFANA_INTERVALS:
        expr = expr.replace(interval, "5m")
    for var in variables(dashboard):
        # Prometheus variables, and Postgres ones whose values are label values (tenant ids).
        if var["type"] == "query" and "allValue" in var:
            expr = re.sub(rf"\$\{{{var['name']}\}}|\${var['name']}\b", var["allValue"], expr)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


# ---------------------------------------------------------------- structure


@pytest.fixture(scope="module", params=DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_the_dashboards_exist_with_stable_uids() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    titles = [load(p)["title"] for p in DASHBOARDS]
    assert len(set(titles)) == len(titles)


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["id"] is None
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["schemaVersion"] >= 39
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "${DS_" not in json.dumps(dashboard)
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in all_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_data_sources_are_variables(dashboard: dict[str, Any]) -> None:
    datasource_vars = {v["name"]: v["query"] for v in variables(dashboard) if v["type"] == "datasource"}
    panels_with_queries = [p for p in all_panels(dashboard) if p["type"] != "row"]
    assert panels_with_queries
    for panel in panels_with_queries:
        assert panel["targets"], f"{panel['title']} has no query"
        assert panel["datasource"] in (PROM_REF, PG_REF, MIXED_REF), panel["title"]
        if panel["datasource"] == MIXED_REF:
            assert {t["datasource"]["type"] for t in panel["targets"]} == {"prometheus", PG_TYPE}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] in (PROM_REF, PG_REF), panel["title"]
            assert panel["datasource"] in (MIXED_REF, target["datasource"]), panel["title"]
            if target["datasource"] == PROM_REF:
                assert target["expr"] and "rawSql" not in target
                assert datasource_vars.get("datasource") == "prometheus"
            else:
                assert target["rawSql"] and target["rawQuery"] is True and "expr" not in target
                assert datasource_vars.get("postgres") == PG_TYPE
    for var in variables(dashboard):
        if var["type"] == "query":
            assert var["datasource"] in (PROM_REF, PG_REF), var["name"]
            if var["datasource"] == PG_REF:
                assert datasource_vars.get("postgres") == PG_TYPE, var["name"]


def _shows_tenant_label(target: dict[str, Any]) -> bool:
    expr = target.get("expr", "")
    return bool(re.search(r"\bby\s*\([^)]*\btenant\b", expr)) or "{{tenant}}" in target.get("legendFormat", "")


def test_tenant_ids_are_never_shown(dashboard: dict[str, Any]) -> None:
    """The metrics' tenant label is an id: a panel reading it joins it to the tenant's name and hides it."""
    for panel in all_panels(dashboard):
        if not any(_shows_tenant_label(t) for t in panel.get("targets", [])):
            continue
        assert panel["datasource"] == MIXED_REF and panel["type"] == "table", panel["title"]
        transforms = {t["id"]: t["options"] for t in panel["transformations"]}
        assert transforms["joinByField"] == {"byField": "tenant", "mode": "inner"}, panel["title"]
        assert transforms["organize"]["excludeByName"].get("tenant") is True, panel["title"]
        names = next(t for t in panel["targets"] if t["datasource"] == PG_REF)["rawSql"]
        assert re.search(r"id::text AS tenant\b", names) and "FROM tenants" in names, panel["title"]
    for var in variables(dashboard):
        if var["name"] in ("tenant", "project"):
            assert var["datasource"] == PG_REF and "AS __text" in var["query"], f"{var['name']} is picked by name"


def test_provisioned_data_sources_match_the_dashboards() -> None:
    config = yaml.safe_load(DATASOURCES.read_text())
    by_type = {d["type"]: d for d in config["datasources"]}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    postgres = by_type[PG_TYPE]
    assert postgres["uid"] == "switchyard-postgres"
    assert postgres["secureJsonData"]["password"].startswith("${")
    assert postgres["user"].startswith("${"), "credentials come from the environment"
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


# ---------------------------------------------------------------- PromQL


def test_promql_uses_only_exported_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    series = exported_series()
    for expr in prometheus_exprs(dashboard):
        selectors, grouping = analyse_promql(grafana_substitute(expr, dashboard))
        assert selectors, f"no metric in {expr!r}"
        known_labels: set[str] = set()
        for name, labels in selectors.items():
            assert name in series, f"{name} is not exported by service/observability/metrics.py ({expr!r})"
            assert labels <= series[name], f"{name} has no label {labels - series[name]} ({expr!r})"
            known_labels |= series[name]
        assert grouping <= known_labels, f"grouping by unknown labels {grouping - known_labels} in {expr!r}"
    for var in variables(dashboard):
        if var["type"] == "query" and var["datasource"] == PROM_REF:
            metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"]).groups()
            assert label in series[metric], f"variable {var['name']}: {metric} has no label {label}"


def test_the_analyser_sees_metrics_labels_and_grouping() -> None:
    selectors, grouping = analyse_promql(
        'histogram_quantile(0.95, sum by (le, model) (rate(a_bucket{model=~"x,y", stream="true"}[5m])))'
        " / ignoring (le) b"
    )
    assert selectors == {"a_bucket": {"model", "stream"}, "b": set()}
    assert grouping == {"le", "model"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (Debian package `prometheus`)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = []
    for path in DASHBOARDS:
        dashboard = load(path)
        for expr in prometheus_exprs(dashboard):
            record = f"dashboard:{path.stem}:expr{len(rules)}"
            rules.append({"record": record, "expr": grafana_substitute(expr, dashboard)})
    assert len(rules) > 30
    rules_file = tmp_path / "dashboards.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# ---------------------------------------------------------------- SQL


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def _hidden_fields(panel: dict[str, Any]) -> set[str]:
    hidden: set[str] = set()
    for transform in panel.get("transformations", []):
        if transform["id"] == "organize":
            hidden |= {name for name, excluded in transform["options"]["excludeByName"].items() if excluded}
    return hidden


async def test_every_sql_query_runs_and_shows_names_not_ids(seeded: Any) -> None:
    conn, _ = seeded
    ran = 0
    for path in DASHBOARDS:
        dashboard = load(path)
        for panel, target in targets(dashboard):
            if "rawSql" not in target:
                continue
            try:
                rows = await conn.fetch(await expand(conn, dashboard, target["rawSql"]))
            except asyncpg.PostgresError as error:
                pytest.fail(f"{path.name} / {panel['title']}: {error}\n{target['rawSql']}")
            ran += 1
            assert rows, f"{path.name} / {panel['title']}: no rows from the known data"
            shown = [(k, v) for row in rows for k, v in row.items() if k not in _hidden_fields(panel)]
            for column, value in shown:
                assert not isinstance(value, uuid.UUID) and not (isinstance(value, str) and _UUID.search(value)), (
                    f"{path.name} / {panel['title']} shows an id in {column!r}")
        for var in variables(dashboard):
            if var["type"] == "query" and var["datasource"] == PG_REF:
                rows = await conn.fetch(await expand(conn, dashboard, var["query"]))
                assert rows and all(not _UUID.search(str(r["__text"])) for r in rows), var["name"]
                ran += 1
    assert ran >= 30


async def test_billing_totals_are_exact(seeded: Any) -> None:
    conn, known = seeded
    billing = dashboard_named("switchyard-billing")
    sql = await expand(conn, billing, panel_sql(billing, "Per-tenant totals"), {"tenant": known["tenants"][:1]})
    rows = await conn.fetch(sql)
    assert len(rows) == 1
    row = rows[0]
    assert row["Tenant"] == "tenant-0"
    assert row["Requests"] == 15
    assert row["Provider cost USD"] == Decimal("0.0623456789")
    assert row["Billed USD"] == Decimal("0.0748148147")
    assert row["Margin USD"] == Decimal("0.0124691358")


async def _one(conn: asyncpg.Connection, dashboard: dict[str, Any], title: str, **selection: Any) -> Any:
    return await conn.fetchval(await expand(conn, dashboard, panel_sql(dashboard, title), selection))


async def test_project_dashboard_totals_and_filters_are_exact(seeded: Any) -> None:
    conn, known = seeded
    d = dashboard_named("switchyard-projects")
    billed, direct, saved = Decimal("0.3248148147"), Decimal("0.07"), Decimal("-0.0048148147")
    assert await _one(conn, d, "Billed") == billed
    assert await _one(conn, d, "Baseten direct would have billed") == direct
    # r1 saved 0.02 - 0.0148148147; r2 (xpay, dearer) cost 0.01 more; r3's model has no direct price.
    assert await _one(conn, d, "Saved vs Baseten direct") == saved
    assert await _one(conn, d, "Requests") == 3
    tenant_b = known["tenants"][1]
    assert await _one(conn, d, "Billed", tenant=[tenant_b]) == Decimal("0.25")
    assert await _one(conn, d, "Requests", tenant=[tenant_b]) == 1
    assert await _one(conn, d, "Billed", project=[known["projects"]["web"]]) == Decimal("0.0148148147")
    assert await _one(conn, d, "Billed", project=["none"]) == Decimal("0.06")
    assert await _one(conn, d, "Billed", tag=["search"]) == Decimal("0.0148148147")
    assert await _one(conn, d, "Billed", tag=["prod"]) == Decimal("0.2648148147")
    assert await _one(conn, d, "Billed", tag=["search", "nothing-has-this"]) == Decimal("0.0148148147")


async def _table(conn: asyncpg.Connection, d: dict[str, Any], title: str, **selection: Any) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in await conn.fetch(await expand(conn, d, panel_sql(d, title), selection))]


async def test_project_dashboard_breakdowns_are_exact(seeded: Any) -> None:
    conn, _ = seeded
    d = dashboard_named("switchyard-projects")
    per_project = await _table(conn, d, "Per-project totals")
    assert per_project == [
        ("tenant-1", "web", 1, 1000, 100, Decimal("0.25"), None, None),
        ("tenant-0", "(no project)", 1, 2000, 200, Decimal("0.06"), Decimal("0.05"), Decimal("-0.01")),
        ("tenant-0", "web", 1, 1000, 100, Decimal("0.0148148147"), Decimal("0.02"), Decimal("0.0051851853")),
    ]
    assert await _table(conn, d, "By tag") == [
        ("prod", 2, Decimal("0.2648148147"), Decimal("0.0051851853")),
        ("(untagged)", 1, Decimal("0.06"), Decimal("-0.01")),
        ("search", 1, Decimal("0.0148148147"), Decimal("0.0051851853")),
    ]
    assert await _table(conn, d, "By tag", tag=["search"]) == [
        ("search", 1, Decimal("0.0148148147"), Decimal("0.0051851853"))]
    assert await _table(conn, d, "Top end users") == [
        ("bob", "tenant-1", 1, Decimal("0.25"), None),
        ("(not given)", "tenant-0", 1, Decimal("0.06"), Decimal("-0.01")),
        ("alice", "tenant-0", 1, Decimal("0.0148148147"), Decimal("0.0051851853")),
    ]
    assert await _table(conn, d, "By API key") == [
        ("tenant-1", "b-key", "sk-sy-b…", "web", 1, Decimal("0.25"), None),
        ("tenant-0", "-", "sk-sy-loos…", "(no project)", 1, Decimal("0.06"), Decimal("-0.01")),
        ("tenant-0", "web-prod", "sk-sy-web-…", "web", 1, Decimal("0.0148148147"), Decimal("0.0051851853")),
    ]
    assert await _table(conn, d, "By inbound API") == [
        ("responses", 1, Decimal("0.25"), None),
        ("messages", 1, Decimal("0.06"), Decimal("-0.01")),
        ("chat", 1, Decimal("0.0148148147"), Decimal("0.0051851853")),
    ]
    over_time = await _table(conn, d, "Billed vs Baseten direct")
    assert sum(r[1] or 0 for r in over_time) == Decimal("0.0748148147")  # billed where direct prices exist
    assert sum(r[2] or 0 for r in over_time) == Decimal("0.07")


async def test_project_variable_lists_the_selected_tenants_projects_by_name(seeded: Any) -> None:
    conn, known = seeded
    d = dashboard_named("switchyard-projects")
    project = next(v for v in variables(d) if v["name"] == "project")
    rows = await conn.fetch(await expand(conn, d, project["query"], {"tenant": known["tenants"][:1]}))
    assert [(r["__text"], r["__value"]) for r in rows] == [
        ("(no project)", "none"), ("tenant-0 / batch", known["projects"]["batch"]),
        ("tenant-0 / web", known["projects"]["web"])]
    tag = next(v for v in variables(d) if v["name"] == "tag")
    assert [r["__value"] for r in await conn.fetch(await expand(conn, d, tag["query"]))] == ["prod", "search"]


async def test_cost_spend_by_tenant_is_per_hour_by_name(seeded: Any) -> None:
    conn, known = seeded
    d = dashboard_named("switchyard-cost")
    rows = await _table(conn, d, "Spend by tenant")
    totals: dict[str, Decimal] = {}
    for _, metric, value in rows:
        totals[metric] = totals.get(metric, Decimal(0)) + value
    # One-hour buckets: USD per hour equals the bucket's sum.
    assert totals == {"tenant-0 (billed)": Decimal("0.0748148147"), "tenant-0 (provider)": Decimal("0.0623456789"),
                      "tenant-1 (billed)": Decimal("0.25"), "tenant-1 (provider)": Decimal("0.2")}
    only = await _table(conn, d, "Spend by tenant", tenant=[known["tenants"][1]], kind=["billed"])
    assert [(m, v) for _, m, v in only] == [("tenant-1 (billed)", Decimal("0.25"))]
