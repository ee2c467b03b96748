"""Stored Responses API responses: what `previous_response_id` continues and `GET /v1/responses/{id}` returns.

Revision ID: 0004_stored_responses
Revises: 0003_attribution
Create Date: 2026-11-29
"""

from alembic import op

revision = "0004_stored_responses"
down_revision = "0003_attribution"
branch_labels = None
depends_on = None


STATEMENTS = [
    """
CREATE TABLE stored_responses (
            id text PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            model text NOT NULL,
            response jsonb NOT NULL,
            conversation jsonb NOT NULL,
            CONSTRAINT ck_stored_responses_expiry CHECK (expires_at > created_at)
        )
    """,
    """
-- A tenant's responses, newest first (listing, and the cascade when a tenant is deleted).
        CREATE INDEX ix_stored_responses_tenant_created ON stored_responses (tenant_id, created_at DESC)
    """,
    """
-- The purge walks expired rows oldest first.
        CREATE INDEX ix_stored_responses_expires_at ON stored_responses (expires_at)
    """,
]


def upgrade() -> None:
    # asyncpg runs one statement per call, so the schema is a list of statements.
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS stored_responses")
