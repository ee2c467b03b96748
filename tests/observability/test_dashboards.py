"""Grafana dashboards and provisioning: structure, data source references, every PromQL
expression against the real metric registry and promtool, every SQL query against a
freshly migrated Postgres."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import asyncpg
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from service.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
EXPECTED_UIDS = {"switchyard-overview", "switchyard-cost", "switchyard-billing", "switchyard-metering"}
PROM_REF = {"type": "prometheus", "uid": "${datasource}"}
PG_TYPE = "grafana-postgresql-datasource"
PG_REF = {"type": PG_TYPE, "uid": "${postgres}"}
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# The time range the SQL tests pretend Grafana has selected.
RANGE_FROM, RANGE_TO = "2026-11-01T00:00:00Z", "2026-11-30T23:59:59Z"
GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_KEYWORDS = GROUPING | {"bool", "and", "or", "unless", "offset"}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile"}
AGGREGATIONS |= {"count_values", "group"}
# String literals, range selectors, label matchers, identifiers, numbers, any other character.
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|[A-Za-z_:][A-Za-z0-9_:]*|\d+(?:\.\d+)?(?:e\d+)?|\S'
)


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


def prometheus_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for _, t in targets(dashboard) if "expr" in t]


def sql_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["rawSql"] for _, t in targets(dashboard) if "rawSql" in t]
    queries += [
        v["query"] for v in variables(dashboard) if v["type"] == "query" and v["datasource"] == PG_REF
    ]
    return queries


def grafana_substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """What Grafana sends for the "All" selection over a 5 minute step."""
    for interval in GRAFANA_INTERVALS:
        expr = expr.replace(interval, "5m")
    for var in variables(dashboard):
        if var["type"] == "query" and var["datasource"] == PROM_REF:
            expr = re.sub(rf"\$\{{{var['name']}\}}|\${var['name']}\b", var["allValue"], expr)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


# ---------------------------------------------------------------- metric registry


def exported_series() -> dict[str, set[str]]:
    """Series name -> label names, for every series Metrics() can expose."""
    registry = Metrics().registry
    series: dict[str, set[str]] = {}
    # The registry's own index of what it holds; the public collect() omits labelled
    # metrics that have no children yet, which is all of them in a fresh process.
    for collector in set(registry._names_to_collectors.values()):
        assert isinstance(collector, MetricWrapperBase), collector
        name, labels, kind = collector._name, set(collector._labelnames), collector._type
        if kind == "counter":
            series[f"{name}_total"] = labels
        elif kind == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_sum"] = series[f"{name}_count"] = labels
        else:
            series[name] = labels
    return series


def analyse_promql(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """(metric name -> label names in its matchers, label names in by/without/on/ignoring lists)."""
    tokens = [m.group(0) for m in _TOKEN.finditer(expr)]
    selectors: dict[str, set[str]] = {}
    grouping: set[str] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in GROUPING and following == "(":
            end = tokens.index(")", i)
            grouping |= {t for t in tokens[i + 2 : end] if t != ","}
            i = end + 1
            continue
        is_name = re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", token) is not None
        if is_name and token not in PROMQL_KEYWORDS and token not in AGGREGATIONS and following != "(":
            labels = set()
            if following.startswith("{"):
                body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', following)
                labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", body))
            selectors.setdefault(token, set()).update(labels)
        i += 1
    return selectors, grouping


# ---------------------------------------------------------------- structure


@pytest.fixture(scope="module", params=DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_the_four_dashboards_exist_with_stable_uids() -> None:
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
        assert panel["datasource"] in (PROM_REF, PG_REF), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            if panel["datasource"] == PROM_REF:
                assert target["expr"] and "rawSql" not in target
                assert datasource_vars.get("datasource") == "prometheus"
            else:
                assert target["rawSql"] and target["rawQuery"] is True and "expr" not in target
                assert datasource_vars.get("postgres") == PG_TYPE
    for var in variables(dashboard):
        if var["type"] == "query":
            assert var["datasource"] in (PROM_REF, PG_REF), var["name"]


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


def grafana_sql(sql: str, tenant_ids: list[str]) -> str:
    """Expand Grafana's Postgres macros and the $tenant variable the way Grafana does."""
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{RANGE_FROM}' AND '{RANGE_TO}'", sql)
    sql = re.sub(
        r"\$__timeGroupAlias\(([^,]+),\s*'1h'\)", r'floor(extract(epoch from \1)/3600)*3600 AS "time"', sql
    )
    sql = sql.replace("$tenant", ",".join(f"'{t}'" for t in tenant_ids))
    assert "$" not in sql, f"unexpanded macro or variable in {sql!r}"
    return sql


@pytest.fixture(scope="module")
async def migrated_database() -> Any:
    from service.db.migrate import upgrade_to_head

    name = f"grafana_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        # Alembic's async env.py runs its own event loop: keep it off this one.
        await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _seed(conn: asyncpg.Connection) -> list[str]:
    """Known rows, replacing whatever an earlier test left, so tests run in any order."""
    await conn.execute("TRUNCATE usage_daily, tenants CASCADE")
    tenants = [uuid.uuid4(), uuid.uuid4()]
    for n, tenant in enumerate(tenants):
        await conn.execute(
            "INSERT INTO tenants (id, name, status) VALUES ($1, $2, 'active')", tenant, f"tenant-{n}"
        )
    gpt, glm = "openai/gpt-oss-120b", "zai-org/GLM-5.2"
    rows = [
        (date(2026, 11, 3), tenants[0], gpt, "baseten", 10, Decimal("0.0123456789"), Decimal("0.0148148147")),
        (date(2026, 11, 4), tenants[0], gpt, "xpay", 5, Decimal("0.05"), Decimal("0.06")),
        (date(2026, 11, 4), tenants[1], glm, "orthogonal", 2, Decimal("0.2"), Decimal("0.25")),
        # Outside the selected range: must not count.
        (date(2026, 10, 31), tenants[0], gpt, "baseten", 99, Decimal("9"), Decimal("9")),
    ]
    await conn.executemany(
        "INSERT INTO usage_daily (day, tenant_id, served_model, front_end, requests, attempts,"
        " prompt_tokens, completion_tokens, provider_cost_usd, billed_usd)"
        " VALUES ($1, $2, $3, $4, $5, $5, 1000, 100, $6, $7)",
        rows,
    )
    return [str(t) for t in tenants]


async def test_every_sql_query_runs_on_the_migrated_schema(migrated_database: str) -> None:
    conn = await asyncpg.connect(migrated_database)
    try:
        tenant_ids = await _seed(conn)
        ran = 0
        for path in DASHBOARDS:
            for sql in sql_queries(load(path)):
                try:
                    await conn.fetch(grafana_sql(sql, tenant_ids))
                except asyncpg.PostgresError as error:
                    pytest.fail(f"{path.name}: {error}\n{sql}")
                ran += 1
        assert ran >= 12
    finally:
        await conn.close()


async def test_billing_totals_are_exact(migrated_database: str) -> None:
    billing = load(ROOT / "grafana/dashboards/billing.json")
    panel = next(p for p in all_panels(billing) if p["title"] == "Per-tenant totals")
    conn = await asyncpg.connect(migrated_database)
    try:
        tenant_ids = await _seed(conn)
        rows = await conn.fetch(grafana_sql(panel["targets"][0]["rawSql"], tenant_ids[:1]))
    finally:
        await conn.close()
    assert len(rows) == 1
    row = rows[0]
    assert row["Tenant"] == "tenant-0"
    assert row["Requests"] == 15
    assert row["Provider cost USD"] == Decimal("0.0623456789")
    assert row["Billed USD"] == Decimal("0.0748148147")
    assert row["Margin USD"] == Decimal("0.0124691358")
