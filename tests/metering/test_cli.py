"""The admin CLI commands: the export is byte-identical to the HTTP one; budgets, usage, tenant updates."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import time
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from service.cli import build_parser, main
from service.db.embedded import PGDATA, demo_home, is_running
from tests.metering.cli_process import ROOT, Demo, command, process_env, run_cli
from tests.support import create_tenant_with_key, fetch


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_export_equals_http_export(cli_env, admin, ledger, tmp_path, fmt):
    out = tmp_path / f"billing.{fmt}"
    main(["export", "--period", "2024-02", "--format", fmt, "--output", str(out)])
    http = admin.get("/admin/billing/export", params={"period": "2024-02", "format": fmt})
    assert http.status_code == 200
    assert out.read_bytes() == http.content
    assert len(http.content.splitlines()) > 10


def test_cli_export_to_stdout(cli_env, admin, ledger, capsysbinary):
    main(["export", "--period", "2024-02"])
    http = admin.get("/admin/billing/export", params={"period": "2024-02"})
    assert capsysbinary.readouterr().out == http.content


def test_cli_export_rejects_a_bad_period(cli_env, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export", "--period", "2024-14"])
    assert exc.value.code == 2 and "period" in capsys.readouterr().err


def test_cli_budgets_set_list_and_delete(cli_env, database_url, admin, capsys):
    tenant = create_tenant_with_key(database_url)
    main(["budgets", "set", tenant.tenant_name, "--period", "month", "--limit", "12.50"])
    main(["budgets", "set", tenant.tenant_name, "--period", "day", "--limit", "2", "--soft",
          "--key", tenant.key_prefix])
    main(["budgets", "set", tenant.tenant_name, "--period", "month", "--limit", "20"])
    out = capsys.readouterr().out
    assert out.count("created budget") == 2 and out.count("updated budget") == 1
    via_http = admin.get(f"/admin/tenants/{tenant.tenant_id}/budgets").json()["data"]
    assert [(b["period"], b["limit_usd"], b["hard"], b["key_prefix"]) for b in via_http] == [
        ("month", "20.0000000000", True, None), ("day", "2.0000000000", False, tenant.key_prefix)]
    main(["budgets", "list", str(tenant.tenant_id)])
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and listed[0].startswith(via_http[0]["id"]) and "$20.0000000000" in listed[0]
    assert "soft" in listed[1] and tenant.key_prefix in listed[1]
    main(["budgets", "delete", tenant.tenant_name, via_http[1]["id"]])
    assert [b["id"] for b in admin.get(f"/admin/tenants/{tenant.tenant_id}/budgets").json()["data"]] == [
        via_http[0]["id"]]


@pytest.mark.parametrize("args", [
    ["budgets", "set", "no-such-tenant", "--period", "day", "--limit", "1"],
    ["budgets", "set", "{tenant}", "--period", "day", "--limit", "-1"],
    ["budgets", "set", "{tenant}", "--period", "day", "--limit", "1", "--key", "sk-sy-missing"],
    ["budgets", "delete", "{tenant}", "not-a-uuid"],
    ["budgets", "delete", "{tenant}", str(uuid.UUID(int=1))],
])
def test_cli_budget_errors_exit_2(cli_env, database_url, capsys, args):
    tenant = create_tenant_with_key(database_url)
    with pytest.raises(SystemExit) as exc:
        main([a.format(tenant=tenant.tenant_name) for a in args])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("switchyard: ")


def test_cli_usage_table_matches_the_admin_api(cli_env, admin, ledger, capsys):
    main(["usage", "--from", "2024-02-01", "--to", "2024-02-29", "--group-by", "tenant,front_end"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "usage 2024-02-01 .. 2024-02-29"
    assert lines[1].split()[:4] == ["tenant_name", "front_end", "requests", "attempts"]
    api = admin.get("/admin/usage", params={"from": "2024-02-01", "to": "2024-02-29",
                                            "group_by": "tenant,front_end"}).json()
    body = [line.split() for line in lines[2:-1]]
    assert [(c[0], c[1], int(c[2]), c[-1]) for c in body] == [
        (r["tenant_name"], r["front_end"], r["requests"], r["billed_usd"]) for r in api["data"]]
    assert lines[-1].split()[0] == "TOTAL" and lines[-1].split()[-1] == api["total"]["billed_usd"]


def test_cli_tenants_update(cli_env, database_url, admin, anon, capsys):
    tenant = create_tenant_with_key(database_url)
    main(["tenants", "update", tenant.tenant_name, "--markup", "0.3", "--allowed-models",
          "openai/gpt-oss-120b,budget", "--denied-front-ends", "xpay,orthogonal"])
    assert "updated tenant" in capsys.readouterr().out
    got = admin.get(f"/admin/tenants/{tenant.tenant_id}").json()
    assert got["markup"] == "0.300000" and got["allowed_models"] == ["openai/gpt-oss-120b", "budget"]
    assert got["denied_front_ends"] == ["xpay", "orthogonal"]
    main(["tenants", "update", str(tenant.tenant_id), "--allowed-models", "all", "--denied-front-ends", ""])
    got = admin.get(f"/admin/tenants/{tenant.tenant_id}").json()
    assert got["allowed_models"] is None and got["denied_front_ends"] == []

    # Disabling from the CLI (another process) reaches the live gateway through the notification.
    auth = {"authorization": f"Bearer {tenant.key}"}
    assert anon.get("/v1/models", headers=auth).status_code == 200
    main(["tenants", "update", tenant.tenant_name, "--status", "disabled"])

    async def refused_soon() -> bool:
        for _ in range(100):
            if anon.get("/v1/models", headers=auth).status_code == 401:
                return True
            await asyncio.sleep(0.02)
        return False

    assert asyncio.run(refused_soon())
    rows = asyncio.run(fetch(database_url, "SELECT status FROM tenants WHERE id = $1", tenant.tenant_id))
    assert rows[0]["status"] == "disabled"


@pytest.mark.parametrize("args", [
    ["tenants", "update", "{tenant}", "--markup", "abc"],
    ["tenants", "update", "{tenant}", "--allowed-models", "no/such"],
    ["tenants", "update", "{tenant}", "--denied-front-ends", "openrouter"],
    ["tenants", "update", "nobody-at-all", "--status", "active"],
    ["tenants", "update", "{tenant}"],
])
def test_cli_tenants_update_errors(cli_env, database_url, capsys, args):
    tenant = create_tenant_with_key(database_url)
    with pytest.raises(SystemExit) as exc:
        main([a.format(tenant=tenant.tenant_name) for a in args])
    assert exc.value.code not in (0, None) and "switchyard: " in capsys.readouterr().err


# ---------------------------------------------------------------- the command itself


def _actions(parser: argparse.ArgumentParser, path: str = "switchyard"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions if a.help}
            for name, child in action.choices.items():
                assert name in helped, f"`{path} {name}` has no help text"
                yield from _actions(child, f"{path} {name}")
        else:
            yield path, action


def test_every_command_and_option_has_help_text():
    seen = 0
    for path, action in _actions(build_parser()):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"`{path}` {name} has no help text"
        seen += 1
    assert seen > 40


def test_version_matches_the_project(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = run_cli(process_env(tmp_path), tmp_path, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"switchyard {project}\n", "")


def test_a_closed_pipe_ends_the_command_quietly(cli_env, ledger, tmp_path):
    """`switchyard export ... | head` when head has gone: no traceback, the shell's SIGPIPE status."""
    env = {**process_env(tmp_path / "data"), "DATABASE_URL": os.environ["DATABASE_URL"]}
    for args, status in ((["export", "--period", "2024-02"], 141), (["tenants", "list"], 141), (["--help"], None)):
        process = subprocess.Popen(command(*args), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader is gone before the first byte is written
        err = process.stderr.read().decode()
        process.wait(timeout=60)
        assert err == "", err
        assert status is None or process.returncode == status
    # And through a real shell pipeline.
    shell = subprocess.run(["bash", "-o", "pipefail", "-c", shlex.join(command("export", "--period", "2024-02"))
                            + " | head -n 2"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           check=False)
    assert len(shell.stdout.splitlines()) == 2 and "Traceback" not in shell.stderr


# ---------------------------------------------------------------- no DATABASE_URL: the demo's database


def _databases(root):
    return sorted(p.parent.relative_to(root) for p in root.rglob("PG_VERSION") if p.parent.name == PGDATA)


def test_without_database_url_commands_start_the_demos_database_and_only_that(tmp_path):
    root, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    env = process_env(root)
    created = run_cli(env, work, "tenants", "create", "acme", "--markup", "0.25")
    assert created.returncode == 0, created.stderr
    assert "Traceback" not in created.stderr and created.stdout.startswith("created tenant acme (")
    assert "started the embedded database" in created.stderr
    listed = run_cli(env, work, "tenants", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[1:] for line in listed.stdout.splitlines()] == [["acme", "active", "markup=0.250000"]]
    assert _databases(root) == [Path("demo/pgdata")]
    assert not is_running(demo_home(root)), "a command must not leave a server it started running"


def test_commands_use_the_running_demos_database(tmp_path):
    root, work = tmp_path / "data", tmp_path / "work"
    work.mkdir()
    env = process_env(root)
    demo = Demo.start(env, work)
    try:
        assert demo.printed("console") == f"http://127.0.0.1:{demo.port}/console"
        token, key = demo.printed("admin token"), demo.printed("demo tenant API key (shown once)")
        assert len(token) >= 16

        listed = run_cli(env, work, "tenants", "list")
        assert listed.returncode == 0, listed.stderr
        assert [line.split()[1] for line in listed.stdout.splitlines()] == ["demo"]
        assert "started the embedded database" not in listed.stderr, "it joined the demo's, started none"
        keys = run_cli(env, work, "keys", "list", "demo")
        assert keys.returncode == 0 and key.startswith(keys.stdout.split("…")[0])

        # Written by the command, seen by the demo's gateway over HTTP: one database.
        assert run_cli(env, work, "tenants", "create", "acme").returncode == 0
        budget = run_cli(env, work, "budgets", "set", "acme", "--period", "month", "--limit", "5")
        assert budget.returncode == 0, budget.stderr
        admin = {"authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{demo.port}"
        names = [t["name"] for t in httpx.get(f"{base}/admin/tenants", headers=admin, timeout=10).json()["data"]]
        assert sorted(names) == ["acme", "demo"]

        answer = httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                            json={"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "Hi"}]})
        assert answer.status_code == 200, answer.text
        usage = _eventually(lambda: run_cli(env, work, "usage", "--group-by", "tenant"),
                            lambda r: any(line.startswith("demo ") for line in r.stdout.splitlines()))
        assert usage.returncode == 0 and "Traceback" not in usage.stderr
        month = datetime.now(UTC).strftime("%Y-%m")
        export = run_cli(env, work, "export", "--period", month)
        assert export.returncode == 0 and len(export.stdout.splitlines()) >= 2, export.stderr

        assert _databases(root) == [Path("demo/pgdata")]
        assert is_running(demo_home(root)), "a command stopped the demo's database"
    finally:
        demo.stop()
    assert not is_running(demo_home(root))


def _eventually(run, done, attempts=50):
    for _ in range(attempts):
        result = run()
        if done(result):
            return result
        time.sleep(0.2)
    raise AssertionError(f"never happened; last output:\n{result.stdout}\n{result.stderr}")
