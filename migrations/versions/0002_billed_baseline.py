"""The savings baseline and the inbound API on every usage row; the rollup sums the baseline.

`direct_billed_usd` is what Baseten direct would have billed for the same model and tokens at the
tenant's markup (NULL where the model has no direct price); `api` is the inbound API the client
spoke (chat, messages, responses). Both are added without a default rewrite of the ledger's
partitions (a nullable column, and a constant default, are catalog-only changes in Postgres 11+).

Revision ID: 0002_billed_baseline
Revises: 0001_initial
Create Date: 2026-11-29
"""

from alembic import op

revision = "0002_billed_baseline"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE usage_events ADD COLUMN direct_billed_usd numeric(20, 10)",
    "ALTER TABLE usage_events ADD COLUMN api text NOT NULL DEFAULT 'chat'",
    "ALTER TABLE usage_daily ADD COLUMN direct_billed_usd numeric(20, 10) NOT NULL DEFAULT 0",
    # A cancelled attempt (its client went away) is neither an answer nor an upstream failure.
    "ALTER TABLE usage_events ADD CONSTRAINT ck_usage_events_status CHECK (status IN ('ok', 'error', 'cancelled'))",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS ck_usage_events_status")
    op.execute("ALTER TABLE usage_daily DROP COLUMN IF EXISTS direct_billed_usd")
    op.execute("ALTER TABLE usage_events DROP COLUMN IF EXISTS api")
    op.execute("ALTER TABLE usage_events DROP COLUMN IF EXISTS direct_billed_usd")
