"""Attribution below the tenant: projects, a key's project, and who and what each usage row was for.

Tenant -> project -> key. Every usage row records the key's project, the end user the client named
(`user`), the tags it sent (`metadata.tags` or `x-switchyard-tags`) and its other metadata pairs.
The new ledger columns are nullable or carry a constant default, so adding them rewrites no partition.

Revision ID: 0003_attribution
Revises: 0002_billed_baseline
Create Date: 2026-11-29
"""

from alembic import op

revision = "0003_attribution"
down_revision = "0002_billed_baseline"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
CREATE TABLE projects (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            name text NOT NULL,
            allowed_models text[],
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_projects_tenant_name UNIQUE (tenant_id, name)
        )
    """,
    "ALTER TABLE api_keys ADD COLUMN project_id uuid REFERENCES projects (id) ON DELETE RESTRICT",
    "CREATE INDEX ix_api_keys_project_id ON api_keys (project_id)",
    "ALTER TABLE usage_events ADD COLUMN project_id uuid",
    "ALTER TABLE usage_events ADD COLUMN end_user text",
    "ALTER TABLE usage_events ADD COLUMN tags text[] NOT NULL DEFAULT '{}'",
    "ALTER TABLE usage_events ADD COLUMN metadata jsonb",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for column in ("metadata", "tags", "end_user", "project_id"):
        op.execute(f"ALTER TABLE usage_events DROP COLUMN IF EXISTS {column}")
    op.execute("ALTER TABLE api_keys DROP COLUMN IF EXISTS project_id")
    op.execute("DROP TABLE IF EXISTS projects")
