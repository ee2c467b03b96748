"""The read-only role Grafana's Postgres data source uses (migration 0007): every dashboard query runs
as it, every column it may read is one a dashboard needs, it sees no secret and writes nothing, and
`switchyard migrate` gives it a password Postgres itself would have stored."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from service.db.migrate import alembic_config, upgrade_to_head
from service.db.reader_role import (
    PASSWORD_ENV,
    READER_ROLE,
    ReaderPasswordError,
    check_password,
    scram_sha256_verifier,
)
from tests.observability.grafana_helpers import DASHBOARDS, expand, load, sql_queries
from tests.support import LOCAL_ADMIN_URL


async def _dashboard_queries(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(where, SQL) for every dashboard query, expanded for "All" (run as the admin: the
    variables' own queries are among the queries checked)."""
    out = []
    for path in DASHBOARDS:
        dashboard = load(path)
        out.extend([(path.name, await expand(conn, dashboard, sql)) for sql in sql_queries(dashboard)])
    return out


async def _failures_as_reader(conn: asyncpg.Connection, queries: list[tuple[str, str]]) -> list[str]:
    """Run each query as the reader inside the caller's transaction; the messages of those refused."""
    failures = []
    await conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
    for where, sql in queries:
        try:
            async with conn.transaction():  # a savepoint: one refusal does not end the others
                await conn.fetch(sql)
        except asyncpg.InsufficientPrivilegeError as error:
            failures.append(f"{where}: {error}")
    await conn.execute("RESET ROLE")
    return failures


async def test_every_dashboard_query_runs_as_the_reader(seeded: Any) -> None:
    conn, _ = seeded
    queries = await _dashboard_queries(conn)
    assert len(queries) >= 30
    async with conn.transaction():
        assert await _failures_as_reader(conn, queries) == []


async def test_every_column_the_reader_may_read_is_one_a_dashboard_needs(seeded: Any) -> None:
    conn, _ = seeded
    granted = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.column_privileges"
        " WHERE grantee = $1 AND privilege_type = 'SELECT' AND table_schema = current_schema()"
        " ORDER BY 1, 2", READER_ROLE)
    assert len(granted) >= 30
    queries = await _dashboard_queries(conn)
    for row in granted:
        table, column = row["table_name"], row["column_name"]
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(f"REVOKE SELECT ({column}) ON {table} FROM {READER_ROLE}")
            failures = await _failures_as_reader(conn, queries)
        finally:
            await tx.rollback()
        assert failures, f"{READER_ROLE} may read {table}.{column}, which no dashboard reads"


_SECRETS = [
    "SELECT key_hash FROM api_keys",
    "SELECT metadata FROM usage_events",
    "SELECT upstream_request_id FROM usage_events",
    "SELECT markup FROM tenants",
    "SELECT count(*) FROM stored_responses",
    "SELECT count(*) FROM budgets",
    "SELECT count(*) FROM quota_counters",
    "SELECT count(*) FROM quota_leases",
    "SELECT count(*) FROM price_versions",
    "SELECT * FROM api_keys",
    "SELECT * FROM usage_events_default",  # a partition, read directly
]


async def test_the_reader_sees_no_secret_and_writes_nothing(seeded: Any) -> None:
    conn, known = seeded
    writes = [
        "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'intruder')",
        "UPDATE usage_events SET billed_usd = 0",
        "DELETE FROM usage_daily",
        "TRUNCATE tenants CASCADE",
        "CREATE TABLE reader_was_here (id int)",
        "SELECT switchyard_quota_settle('budget:x', now(), 'h', 1, 0, 60)",
    ]
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
        for sql in _SECRETS + writes:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():
                    await conn.fetch(sql)
        await conn.execute("RESET ROLE")
    tables = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')")
    for (table,) in tables:
        for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"):
            assert not await conn.fetchval("SELECT has_table_privilege($1, $2, $3)", READER_ROLE, table, privilege), (
                f"{READER_ROLE} has {privilege} on {table}")
    assert known["keys"]  # the key rows exist: the refusals above are about permission, not absence


# ---------------------------------------------------------------- the password


async def test_the_scram_verifier_is_the_one_postgres_computes(migrated_database: str) -> None:
    """Postgres hashes a plain password itself; ours, with its salt, must come out identical."""
    conn = await asyncpg.connect(LOCAL_ADMIN_URL)
    role = f"scram_probe_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute("SET password_encryption = 'scram-sha-256'")
        await conn.execute(f"CREATE ROLE {role} NOLOGIN PASSWORD 'correct-horse-battery-staple'")
        stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    finally:
        await conn.execute(f"DROP ROLE IF EXISTS {role}")
        await conn.close()
    iterations, salt = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$.*", stored).groups()
    ours = scram_sha256_verifier("correct-horse-battery-staple", salt=base64.b64decode(salt),
                                 iterations=int(iterations))
    assert ours == stored
    assert scram_sha256_verifier("correct-horse-battery-stapler", salt=base64.b64decode(salt),
                                 iterations=int(iterations)) != stored


@pytest.mark.parametrize("password", ["short", "sixteen chars!!!", "pässwörd-with-umlauts", "tab\tinside-it-long",
                                      "REPLACE_ME_GRAFANA_READER_PASSWORD"])
def test_unusable_passwords_are_refused(password: str) -> None:
    with pytest.raises(ReaderPasswordError):
        check_password(password)


def test_migrate_lets_the_reader_log_in_read_only(migrated_database: str, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    password = "grafana-" + uuid.uuid4().hex
    monkeypatch.setenv("DATABASE_URL", migrated_database)
    monkeypatch.setenv(PASSWORD_ENV, password)
    main(["migrate"])
    assert f"{READER_ROLE} (Grafana's read-only role) logs in" in capsys.readouterr().out

    async def check() -> None:
        admin = await asyncpg.connect(LOCAL_ADMIN_URL)
        try:
            row = await admin.fetchrow("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1",
                                       READER_ROLE)
        finally:
            await admin.close()
        assert row["rolcanlogin"] is True
        iterations, salt = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$.*", row["rolpassword"]).groups()
        assert scram_sha256_verifier(password, salt=base64.b64decode(salt), iterations=int(iterations)) == (
            row["rolpassword"])
        # Logged in as Grafana would be: sessions are read-only and time-limited.
        reader = await asyncpg.connect(migrated_database, user=READER_ROLE, password=password)
        try:
            assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
            assert await reader.fetchval("SHOW statement_timeout") == "1min"
            assert await reader.fetchval("SELECT count(*) FROM tenants") >= 0
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await reader.execute("CREATE TEMP TABLE scratch (id int)")
        finally:
            await reader.close()

    asyncio.run(check())


def test_migrate_refuses_a_weak_reader_password(migrated_database: str, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    monkeypatch.setenv("DATABASE_URL", migrated_database)
    monkeypatch.setenv(PASSWORD_ENV, "too-short")
    with pytest.raises(SystemExit) as exc:
        main(["migrate"])
    assert exc.value.code == 2 and PASSWORD_ENV in capsys.readouterr().err


# ---------------------------------------------------------------- the migration


@pytest.fixture
async def own_database() -> AsyncIterator[str]:
    name = f"reader_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(LOCAL_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield LOCAL_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _reader_grants(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM information_schema.column_privileges WHERE grantee = $1",
                                   READER_ROLE)
    finally:
        await conn.close()


async def test_the_migration_downgrades_and_upgrades_again(own_database: str, migrated_database: str) -> None:
    from alembic import command

    # migrated_database is another database on this cluster granting the role privileges, so the
    # downgrade here must keep the shared role and only take back this database's grants.
    await asyncio.to_thread(upgrade_to_head, own_database)
    assert await _reader_grants(own_database) >= 30
    await asyncio.to_thread(command.downgrade, alembic_config(own_database), "0004_stored_responses")
    assert await _reader_grants(own_database) == 0
    assert await _reader_grants(migrated_database) >= 30
    await asyncio.to_thread(upgrade_to_head, own_database)
    assert await _reader_grants(own_database) == await _reader_grants(migrated_database)
