"""The database announces every new or re-keyed API key on the auth channel.

Each gateway process keeps the directory of key prefixes that exist, so that an unknown key is
refused without a query (service.auth.unknown_keys). A key must reach every directory as soon as it
is committed, whichever path created it (the admin API, the CLI, a script, psql): a trigger cannot
be forgotten by a new path, and its notification is sent at commit, never for a rolled-back key.

Revision ID: 0010_announce_new_keys
Revises: 0009_usage_daily_users
Create Date: 2026-11-29
"""

from alembic import op

revision = "0010_announce_new_keys"
down_revision = "0009_usage_daily_users"
branch_labels = None
depends_on = None

STATEMENTS = [
    # The channel and payload are service.auth.cache's CHANNEL and its `key:<prefix>` announcement.
    """
CREATE FUNCTION switchyard_announce_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('switchyard_auth', 'key:' || NEW.prefix);
    RETURN NULL;
END
$$
    """,
    """
CREATE TRIGGER api_keys_announce AFTER INSERT OR UPDATE OF prefix ON api_keys
    FOR EACH ROW EXECUTE FUNCTION switchyard_announce_key()
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS api_keys_announce ON api_keys")
    op.execute("DROP FUNCTION IF EXISTS switchyard_announce_key()")
