"""The agent CLIs platform teams run, from npm, offline against a live gateway: Claude Code
(`claude -p`, Anthropic Messages) and Codex CLI (`codex exec`, OpenAI Responses). Each must answer,
and every call it made must be in the ledger at the cost the tenant was told.

scripts/test-deps.sh installs both (tests/clients/package-lock.json pins them)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import acreate_tenant_with_key, fetch, wait_for_rows

BIN = Path(__file__).resolve().parents[1] / "clients" / "node_modules" / ".bin"
ROWS = "SELECT * FROM usage_events WHERE tenant_id = $1 ORDER BY started_at"


def _binary(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/test-deps.sh (npm ci in tests/clients)")
    return str(path)


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TERM": "dumb",
            "NO_COLOR": "1", **extra}


def test_claude_code_answers_through_the_gateway(gateway, database_url, tmp_path):
    tenant = asyncio.run(acreate_tenant_with_key(database_url))
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [_binary("claude"), "-p", "say hi"], cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=180, env=_env(tmp_path, ANTHROPIC_BASE_URL=gateway.url, ANTHROPIC_API_KEY=tenant.key,
                              CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1"))
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert done.stdout.strip()
    rows = asyncio.run(wait_for_rows(database_url, ROWS, 1, tenant.tenant_id))
    assert rows and {r["api"] for r in rows} == {"messages"}
    assert all(r["requested_model"].startswith("claude") and not r["served_model"].startswith("claude")
               for r in rows)
    assert rows[-1]["status"] == "ok" and rows[-1]["stream"]
    assert all(r["billed_usd"] >= 0 for r in rows)


CODEX_CONFIG = """\
model = "openai/gpt-oss-120b"
model_provider = "switchyard"

[model_providers.switchyard]
name = "Switchyard"
base_url = "{base_url}/v1"
wire_api = "responses"
env_key = "SWITCHYARD_API_KEY"
request_max_retries = 0
stream_max_retries = 0
"""


def test_codex_exec_answers_through_the_gateway(gateway, database_url, tmp_path):
    tenant = asyncio.run(acreate_tenant_with_key(database_url))
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(CODEX_CONFIG.format(base_url=gateway.url))
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [_binary("codex"), "exec", "--skip-git-repo-check", "say hi"], cwd=work, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=180,
        env=_env(tmp_path, CODEX_HOME=str(home), SWITCHYARD_API_KEY=tenant.key))
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert done.stdout.strip()
    rows = asyncio.run(wait_for_rows(database_url, ROWS, 1, tenant.tenant_id))
    assert rows and {r["api"] for r in rows} == {"responses"}
    assert rows[-1]["status"] == "ok" and rows[-1]["served_model"] == "openai/gpt-oss-120b"
    # Codex sends store: false: nothing of its conversation is kept.
    kept = asyncio.run(fetch(database_url, "SELECT count(*) AS n FROM stored_responses WHERE tenant_id = $1",
                             tenant.tenant_id))
    assert kept[0]["n"] == 0
