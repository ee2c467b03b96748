"""PromQL checked against the real metric registry: which series Switchyard exports, with which
labels, and which metrics, matchers and grouping labels an expression uses."""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from service.observability.metrics import Metrics

GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
PROMQL_KEYWORDS = GROUPING | {"bool", "and", "or", "unless", "offset"}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile"}
AGGREGATIONS |= {"count_values", "group"}
# String literals, range selectors, label matchers, identifiers, numbers, any other character.
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|[A-Za-z_:][A-Za-z0-9_:]*|\d+(?:\.\d+)?(?:e\d+)?|\S'
)


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
