"""A real Prometheus server for tests, the dashboards' PromQL as Grafana would send it, and
exposition parsing."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.served import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))

# What Grafana puts in place of its interval macros; "All" for every template variable.
INTERVALS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "5m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def require_binary(name: str) -> str:
    """The binary's path; missing, it fails under CI (the suite must not pass vacuously) and skips locally."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (Debian package `prometheus`, scripts/test-deps.sh)")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return path


def promtool_check_metrics(exposition: bytes) -> subprocess.CompletedProcess:
    promtool = require_binary("promtool")
    return subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30,
                          check=False)


# ---------------------------------------------------------------- dashboards


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str  # the dashboard's uid
    panel: str
    expr: str  # as Grafana sends it: macros and variables substituted


def grafana_substitute(expr: str) -> str:
    for macro, value in INTERVALS.items():
        expr = expr.replace(macro, value)
    expr = _VARIABLE.sub(".*", expr)
    if "$" in expr:
        raise ValueError(f"unsubstituted variable in {expr!r}")
    return expr


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries() -> list[DashboardQuery]:
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                if "expr" in target:
                    expr = grafana_substitute(target["expr"])
                    queries.append(DashboardQuery(dashboard["uid"], panel["title"], expr))
    return queries


# ---------------------------------------------------------------- Prometheus server


class PromQLError(Exception):
    pass


class PrometheusServer:
    """`prometheus` scraping the given targets every second, its data in a temporary directory."""

    def __init__(self, binary: str, work_dir: Path, targets: list[str], interval: str = "1s") -> None:
        self.binary = binary
        self.work_dir = work_dir
        self.targets = targets
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = work_dir / "prometheus.log"
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        config = {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval,
                       "evaluation_interval": self.interval},
            "scrape_configs": [{"job_name": "switchyard", "static_configs": [{"targets": self.targets}]}],
        }
        config_path = self.work_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        command = [
            self.binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=self.work_dir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self._http.get("/-/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"prometheus not ready within {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the current time, as a list of {metric, value} results."""
        response = self._http.get("/api/v1/query", params={"query": expr})
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{body.get('errorType')}: {body.get('error')} in {expr!r}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def wait_for(self, expr: str, predicate: Callable[[list[float]], bool],
                 timeout: float = 15.0) -> list[float]:
        """Poll until the query's values satisfy predicate (new samples arrive once a scrape lands)."""
        deadline = time.monotonic() + timeout
        while True:
            values = values_of(self.query(expr))
            if predicate(values):
                return values
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r} still {values} after {timeout}s")
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> int | None:
        self._http.close()
        if self.process is None:
            return None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def values_of(result: list[dict[str, Any]]) -> list[float]:
    return [float(item["value"][1]) for item in result]


def has_positive(values: list[float]) -> bool:
    return any(math.isfinite(v) and v > 0 for v in values)


# ---------------------------------------------------------------- exposition


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample (name, labels, value) in a text exposition."""
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(exposition)
            for s in family.samples]


def total(exposition: str, name: str, **match: str) -> float:
    """Sum of one series' samples whose labels include `match`."""
    return sum(value for sample, labels, value in samples(exposition)
               if sample == name and all(labels.get(k) == v for k, v in match.items()))


def settled_scrape(url: str, name: str, expected: float, *, headers: dict[str, str] | None = None,
                   timeout: float = 5.0) -> str:
    """The exposition at `url` once `name` sums to `expected` (or the last one after `timeout`).

    Each worker writes its counts to the shared files in batches (service.observability.
    metric_values, every 50 ms), so a scrape served by another process may lag the last requests
    by that much; the counts must settle on the exact figure, which the caller then asserts."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(url, headers=headers, timeout=10).text
        if total(text, name) == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.02)
