"""A read-only role for Grafana's Postgres data source: SELECT on exactly the columns the
dashboards read (grafana/dashboards/*.json), nothing else -- no key hashes, no request metadata,
no stored conversations, no budgets or quotas, no writes.

Roles belong to the whole Postgres cluster, so the role is created once (several Switchyard
databases on one cluster share it) and the grants are made in this database. It is created
without a password, so it cannot log in until `switchyard migrate` runs with
SWITCHYARD_GRAFANA_READER_PASSWORD (service/db/reader_role.py), which keeps the secret out of
the repository and out of this migration. Grafana's sessions are read-only and time-limited.

Revision ID: 0007_grafana_reader
Revises: 0006_alerts
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007_grafana_reader"
down_revision = "0006_alerts"
branch_labels = None
depends_on = None

# service.db.reader_role.READER_ROLE; written out so this migration never changes under an edit.
ROLE = "switchyard_grafana"

# Table -> the columns the dashboards read. tests/observability/test_grafana_reader.py runs every
# dashboard query as this role and checks that revoking any one of these breaks one of them.
READABLE = {
    "tenants": ("id", "name", "status"),
    "projects": ("id", "tenant_id", "name"),
    "api_keys": ("id", "prefix", "name"),
    "usage_daily": (
        "day", "tenant_id", "served_model", "front_end", "requests", "attempts", "prompt_tokens",
        "cached_tokens", "completion_tokens", "reasoning_tokens", "provider_cost_usd", "billed_usd",
    ),
    # Through the partitioned parent: its partitions (made monthly) need no grants of their own.
    "usage_events": (
        "request_id", "tenant_id", "key_id", "project_id", "front_end", "status", "error_code", "http_status",
        "client_disconnected", "estimated", "prompt_tokens", "completion_tokens", "provider_cost_usd",
        "billed_usd", "direct_billed_usd", "api", "tags", "end_user", "started_at",
    ),
}

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN CONNECTION LIMIT 10;
            ALTER ROLE {ROLE} SET default_transaction_read_only = on;
            ALTER ROLE {ROLE} SET statement_timeout = '60s';
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration on this cluster created it first
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'creating role {ROLE} needs CREATEROLE'
                    USING HINT = 'have an administrator run CREATE ROLE {ROLE} NOLOGIN once, then migrate again';
        END;
    END IF;
END $$
"""

STATEMENTS = [
    CREATE_ROLE,
    # CONNECT and schema USAGE are PUBLIC's by default; granted anyway for databases that revoked them.
    f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database()); END $$",
    f"DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO {ROLE}', current_schema()); END $$",
    *(f"GRANT SELECT ({', '.join(columns)}) ON {table} TO {ROLE}" for table, columns in READABLE.items()),
]


def upgrade() -> None:
    # asyncpg runs one statement per call, so the schema is a list of statements.
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    # Revoking a table's privileges revokes its column privileges too.
    op.execute(f"REVOKE ALL ON {', '.join(READABLE)} FROM {ROLE}")
    op.execute(f"DO $$ BEGIN EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {ROLE}', current_database()); END $$")
    op.execute(f"DO $$ BEGIN EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {ROLE}', current_schema()); END $$")
    op.execute(f"""
DO $$
BEGIN
    DROP ROLE IF EXISTS {ROLE};
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'role {ROLE} kept: another database on this cluster still grants it privileges';
END $$
""")
