"""Shared helpers for the deployment tests: paths, the gateway's environment names, promtool."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
K8S_EXAMPLE = DEPLOY / "k8s" / "overlays" / "example"
GRAFANA = ROOT / "grafana"

# The command the image runs; tests and the lead's end-to-end runs start the gateway this way.
# Inside its container the server listens on every interface: the port mapping decides who reaches it.
SERVE_COMMAND = ["switchyard", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]  # noqa: S104
HTTP_PORT = 8080
# Where production scrapes: SWITCHYARD_METRICS_PORT, served by `serve`'s master; not the public port.
METRICS_PORT = 9464
SECRET_ENV = {
    "DATABASE_URL",
    "SWITCHYARD_ADMIN_TOKEN",
    "BASETEN_API_KEY",
    "XPAY_API_KEY",
    "ORTHOGONAL_API_KEY",
}
# The stand-in upstreams' contract (python -m service.simulator).
STANDIN_ENV = {
    "BASETEN_API_KEY": "sim-baseten-key",
    "XPAY_API_KEY": "xpay_sk_sim",
    "ORTHOGONAL_API_KEY": "orth_test_sim",
}
STANDIN_URLS = {
    "BASETEN_BASE_URL": (9001, "/v1"),
    "XPAY_MCP_URL": (9002, "/mcp"),
    "ORTHOGONAL_BASE_URL": (9003, "/v1"),
}

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*_[A-Z0-9_]+$")


def gateway_env_names() -> set[str]:
    """Every environment variable the gateway reads: string constants shaped like env names
    in service/settings.py and service/observability/metrics.py (PROMETHEUS_MULTIPROC_DIR)."""
    names: set[str] = set()
    for rel in ("service/settings.py", "service/observability/metrics.py"):
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _ENV_NAME.match(node.value):
                names.add(node.value)
    return names


def promtool() -> str:
    """Path to promtool; skipped locally when missing, a failure under CI."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (Debian package `prometheus`)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)


def parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values
