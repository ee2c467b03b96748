"""The admin CLI commands: the export is byte-identical to the HTTP one; budgets, usage, tenant updates."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.cli import main
from tests.support import create_tenant_with_key, fetch


@pytest.fixture()
def cli_env(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    for name in ("SWITCHYARD_CATALOG", "SWITCHYARD_CATALOG_OVERRIDES"):
        monkeypatch.delenv(name, raising=False)


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
