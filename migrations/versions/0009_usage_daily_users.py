"""A daily rollup per end user, so per-user views (the console's top end users, /v1/usage grouped
by user) read a table the size of the distinct users a day, not the ledger.

One row per (tenant, day, end user); a row without an end user counts under '' (as untagged rows
count under the tag ''), so a user grouping over the rollup equals one over the ledger. It is kept
apart from usage_daily so that a tenant with a million end users grows only this table, and the
ledger writer upserts it in the same statement as the ledger insert.

Revision ID: 0009_usage_daily_users
Revises: 0008_console_sessions
Create Date: 2026-11-29
"""

from alembic import op

revision = "0009_usage_daily_users"
down_revision = "0008_console_sessions"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
CREATE TABLE usage_daily_users (
            tenant_id uuid NOT NULL,
            day date NOT NULL,
            end_user text NOT NULL,
            requests bigint NOT NULL DEFAULT 0,
            attempts bigint NOT NULL DEFAULT 0,
            prompt_tokens bigint NOT NULL DEFAULT 0,
            cached_tokens bigint NOT NULL DEFAULT 0,
            completion_tokens bigint NOT NULL DEFAULT 0,
            reasoning_tokens bigint NOT NULL DEFAULT 0,
            provider_cost_usd numeric(20, 10) NOT NULL DEFAULT 0,
            billed_usd numeric(20, 10) NOT NULL DEFAULT 0,
            direct_billed_usd numeric(20, 10) NOT NULL DEFAULT 0,
            CONSTRAINT pk_usage_daily_users PRIMARY KEY (tenant_id, day, end_user)
        )
    """,
    # Built once from the ledger, with the ledger locked against writes meanwhile.
    "LOCK TABLE usage_events IN SHARE MODE",
    """
INSERT INTO usage_daily_users (tenant_id, day, end_user, requests, attempts, prompt_tokens, cached_tokens,
            completion_tokens, reasoning_tokens, provider_cost_usd, billed_usd, direct_billed_usd)
        SELECT tenant_id, (started_at AT TIME ZONE 'UTC')::date, COALESCE(end_user, ''),
               count(*) FILTER (WHERE status = 'ok'), count(*), sum(prompt_tokens), sum(cached_tokens),
               sum(completion_tokens), sum(reasoning_tokens), sum(provider_cost_usd), sum(billed_usd),
               sum(COALESCE(direct_billed_usd, billed_usd))
        FROM usage_events GROUP BY 1, 2, 3
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS usage_daily_users")
