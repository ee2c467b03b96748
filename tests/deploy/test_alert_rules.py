"""deploy/prometheus/alerts.yml: valid for promtool, every alert unit-tested firing and quiet,
built on series the gateway exports, and pointing operators at dashboards that exist."""

from __future__ import annotations

import json

import yaml

from tests.observability.promql import analyse_promql, exported_series

from .helpers import DEPLOY, GRAFANA, ROOT, run_promtool

RULES = DEPLOY / "prometheus" / "alerts.yml"
UNIT_TESTS = ROOT / "tests" / "deploy" / "prometheus" / "alerts.test.yml"
# Labels Prometheus attaches to every scraped series: rules may keep or match them.
TARGET_LABELS = {"job", "instance"}
SEVERITIES = {"critical", "warning", "info"}


def _alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in _alerts():
        mine = [case for case in cases if case["alertname"] == alert["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{alert['alert']} is never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{alert['alert']} is never tested quiet"


def test_the_unit_tests_load_the_rules_file_itself() -> None:
    rule_files = yaml.safe_load(UNIT_TESTS.read_text())["rule_files"]
    assert [(UNIT_TESTS.parent / f).resolve() for f in rule_files] == [RULES.resolve()]


def test_rules_read_only_exported_metrics_and_labels() -> None:
    series = exported_series()
    for alert in _alerts():
        selectors, grouping = analyse_promql(alert["expr"])
        assert selectors, alert["alert"]
        known = set(TARGET_LABELS)
        for name, labels in selectors.items():
            assert name in series, f"{alert['alert']}: {name} is not exported"
            assert labels <= series[name], f"{alert['alert']}: {name} has no label {labels - series[name]}"
            known |= series[name]
        assert grouping <= known, f"{alert['alert']}: grouping by unknown labels {grouping - known}"


def test_every_alert_says_how_bad_what_and_where_to_look() -> None:
    uids = {json.loads(p.read_text())["uid"] for p in (GRAFANA / "dashboards").glob("*.json")}
    names = [alert["alert"] for alert in _alerts()]
    assert len(names) == len(set(names))
    for alert in _alerts():
        assert alert["alert"].startswith("Switchyard")
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        assert {"summary", "description", "dashboard"} <= set(alert["annotations"]), alert["alert"]
        assert alert["annotations"]["dashboard"] in uids, alert["alert"]
    for topic in ("BudgetBurn", "ErrorRate", "UsageRowsNotWritten", "SpillGrowing", "CircuitOpen", "BalanceLow"):
        assert any(topic in name for name in names), f"no alert for {topic}"
