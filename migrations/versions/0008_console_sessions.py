"""Console sessions: who signed in to /console, shared by every worker process and replica.

A row is keyed by the SHA-256 of the session id (the cookie's value), so a copy of the table lets
nobody sign in. A tenant's session names the key and the secret (by prefix) it signed in with:
every console request re-reads that key, so revoking it, its expiry, the end of a rotated
secret's grace period or disabling the tenant ends the session at the next request, whichever
process serves it. An operator's session holds a tag binding it to the admin token it signed in
with (a hash over the session id and the token, useless without the cookie): changing the token
ends every operator session.

Revision ID: 0008_console_sessions
Revises: 0007_grafana_reader
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008_console_sessions"
down_revision = "0007_grafana_reader"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
CREATE TABLE console_sessions (
            id_hash bytea PRIMARY KEY,
            kind text NOT NULL,
            tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
            key_id uuid REFERENCES api_keys (id) ON DELETE CASCADE,
            key_prefix text,
            operator_tag bytea,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            CONSTRAINT ck_console_sessions_kind CHECK (kind IN ('tenant', 'operator')),
            CONSTRAINT ck_console_sessions_principal CHECK (
                (kind = 'tenant' AND tenant_id IS NOT NULL AND key_id IS NOT NULL AND key_prefix IS NOT NULL
                 AND operator_tag IS NULL)
                OR (kind = 'operator' AND tenant_id IS NULL AND key_id IS NULL AND key_prefix IS NULL
                    AND operator_tag IS NOT NULL)),
            CONSTRAINT ck_console_sessions_expiry CHECK (expires_at > created_at)
        )
    """,
    # Sign-in purges expired rows oldest first; a key's sessions go with it (ON DELETE CASCADE).
    "CREATE INDEX ix_console_sessions_expires_at ON console_sessions (expires_at)",
    "CREATE INDEX ix_console_sessions_key_id ON console_sessions (key_id) WHERE key_id IS NOT NULL",
]


def upgrade() -> None:
    # asyncpg runs one statement per call, so the schema is a list of statements.
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS console_sessions")
