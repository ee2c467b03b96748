"""Budgets at every level (tenant, project, key; day, month or a rolling window), the key lifecycle
(expiry, rotation with a grace period, per-key model allow-lists and metadata), and rollups that
serve every attribution grouping without scanning the ledger.

- `budgets` gains `project_id` (a project's budget) and `window_hours` (a rolling window of whole
  hours, period 'rolling'). A rolling budget is counted in hourly buckets under the same lease
  mechanism; `switchyard_quota_lease_window` grants into a bucket only if every window containing
  it stays within the limit (see service.metering.admission).
- `api_keys` gains `expires_at`, `metadata`, `allowed_models`, and the previous secret of a rotated
  key (`previous_prefix`, `previous_key_hash`, `previous_expires_at`): both secrets authenticate
  the same key (same id, limits, budgets, attribution) until the grace period ends.
- `usage_daily` is keyed by project and key as well (the nil UUID stands for "none", so the key
  stays a plain primary key the ledger writer's ON CONFLICT names), and `usage_daily_tags` holds
  the same sums per tag (the empty tag stands for untagged rows). Both are rebuilt here from the
  ledger once, in this transaction, with the ledger locked against writes: on a very large ledger
  run this migration in a quiet window. End users are deliberately not rolled up (their number is
  unbounded); per-user views read the ledger through a partial index.

Revision ID: 0005_projects_budgets
Revises: 0004_stored_responses
Create Date: 2026-11-30
"""

from alembic import op

revision = "0005_projects_budgets"
down_revision = "0004_stored_responses"
branch_labels = None
depends_on = None

NIL = "'00000000-0000-0000-0000-000000000000'::uuid"
_SUMS = """count(*) FILTER (WHERE e.status = 'ok'), count(*), sum(e.prompt_tokens), sum(e.cached_tokens),
           sum(e.completion_tokens), sum(e.reasoning_tokens), sum(e.provider_cost_usd), sum(e.billed_usd),
           COALESCE(sum(e.direct_billed_usd), 0)"""
_MEASURES = """requests, attempts, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens,
           provider_cost_usd, billed_usd, direct_billed_usd"""

STATEMENTS = [
    # Writers insert into the ledger, then the rollups, in one statement: locking the ledger first
    # makes them wait here instead of deadlocking against the rollup's rebuild.
    "LOCK TABLE usage_events IN SHARE MODE",
    "ALTER TABLE projects ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()",
    # ---- keys --------------------------------------------------------------------------------
    "ALTER TABLE api_keys ADD COLUMN expires_at timestamptz",
    "ALTER TABLE api_keys ADD COLUMN metadata jsonb",
    "ALTER TABLE api_keys ADD COLUMN allowed_models text[]",
    "ALTER TABLE api_keys ADD COLUMN rotated_at timestamptz",
    "ALTER TABLE api_keys ADD COLUMN previous_prefix text",
    "ALTER TABLE api_keys ADD COLUMN previous_key_hash bytea",
    "ALTER TABLE api_keys ADD COLUMN previous_expires_at timestamptz",
    """
ALTER TABLE api_keys ADD CONSTRAINT ck_api_keys_previous CHECK (
            (previous_prefix IS NULL) = (previous_key_hash IS NULL)
            AND (previous_prefix IS NULL) = (previous_expires_at IS NULL))
    """,
    # Authentication looks a key up by either of its secrets' prefixes.
    "CREATE UNIQUE INDEX uq_api_keys_previous_prefix ON api_keys (previous_prefix) WHERE previous_prefix IS NOT NULL",
    # ---- budgets -------------------------------------------------------------------------------
    "ALTER TABLE budgets ADD COLUMN project_id uuid REFERENCES projects (id) ON DELETE CASCADE",
    "ALTER TABLE budgets ADD COLUMN window_hours integer",
    "ALTER TABLE budgets DROP CONSTRAINT ck_budgets_period",
    "ALTER TABLE budgets ADD CONSTRAINT ck_budgets_period CHECK (period IN ('day', 'month', 'rolling'))",
    """
ALTER TABLE budgets ADD CONSTRAINT ck_budgets_window CHECK (
            (period = 'rolling') = (window_hours IS NOT NULL)
            AND (window_hours IS NULL OR window_hours BETWEEN 1 AND 744))
    """,
    # One level per budget: a key's, a project's, or (neither set) the whole tenant's.
    "ALTER TABLE budgets ADD CONSTRAINT ck_budgets_level CHECK (key_id IS NULL OR project_id IS NULL)",
    "DROP INDEX uq_budgets_scope",
    f"""
-- One budget per level and period (and window length, for rolling budgets).
        CREATE UNIQUE INDEX uq_budgets_scope ON budgets (tenant_id, COALESCE(project_id, {NIL}),
            COALESCE(key_id, {NIL}), period, COALESCE(window_hours, 0))
    """,
    "CREATE INDEX ix_budgets_project_id ON budgets (project_id) WHERE project_id IS NOT NULL",
    """
-- A rolling budget's lease: spend is counted in buckets (period starts, e.g. hours); a grant into
-- bucket p_period is made only if every window of length p_window that contains that bucket stays
-- within the limit, counting each bucket's settled spend and its outstanding leases. A bucket's
-- (used + leased) only shrinks once granted (settles move leased to used, releases give it back),
-- so no window is ever passed, whichever bucket a late reservation lands in. One lock per scope:
-- a grant in one bucket changes its neighbours' windows.
CREATE FUNCTION switchyard_quota_lease_window(p_scope text, p_period timestamptz, p_holder text,
            p_limit numeric, p_need numeric, p_slice numeric, p_ttl_seconds integer, p_window interval)
        RETURNS TABLE (granted numeric, remaining numeric) LANGUAGE plpgsql AS $$
        DECLARE
            v_peak numeric;
            v_remaining numeric;
            v_grant numeric;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended(p_scope, 0));
            -- Leases of holders that stopped renewing are spent, as in fixed periods.
            WITH dead AS (
                DELETE FROM quota_leases l WHERE l.scope = p_scope
                    AND l.period_start > p_period - p_window AND l.period_start < p_period + p_window
                    AND l.expires_at < now() AND l.holder <> p_holder
                RETURNING l.period_start, l.granted)
            INSERT INTO quota_counters AS c (scope, period_start, used)
                SELECT p_scope, d.period_start, sum(d.granted) FROM dead d GROUP BY d.period_start
                ON CONFLICT (scope, period_start) DO UPDATE SET used = c.used + EXCLUDED.used;
            WITH amounts AS (
                SELECT c.period_start, c.used AS amount FROM quota_counters c
                    WHERE c.scope = p_scope
                      AND c.period_start > p_period - p_window AND c.period_start < p_period + p_window
                UNION ALL
                SELECT l.period_start, l.granted FROM quota_leases l
                    WHERE l.scope = p_scope
                      AND l.period_start > p_period - p_window AND l.period_start < p_period + p_window
                UNION ALL
                SELECT p_period, 0
            ), buckets AS (
                SELECT a.period_start, sum(a.amount) AS amount FROM amounts a GROUP BY a.period_start
            ), windows AS (
                SELECT b.period_start, sum(b.amount) OVER (ORDER BY b.period_start
                    RANGE BETWEEN p_window - interval '1 microsecond' PRECEDING AND CURRENT ROW) AS total
                FROM buckets b
            )
            -- The windows containing p_period end at p_period or at a later bucket within p_window.
            SELECT max(w.total) INTO v_peak FROM windows w WHERE w.period_start >= p_period;
            v_remaining := p_limit - v_peak;
            IF v_remaining < p_need THEN
                RETURN QUERY SELECT 0::numeric, GREATEST(v_remaining, 0);
                RETURN;
            END IF;
            v_grant := LEAST(GREATEST(p_need, p_slice), v_remaining);
            INSERT INTO quota_counters (scope, period_start) VALUES (p_scope, p_period) ON CONFLICT DO NOTHING;
            INSERT INTO quota_leases AS l (scope, period_start, holder, granted, expires_at)
                VALUES (p_scope, p_period, p_holder, v_grant, now() + make_interval(secs => p_ttl_seconds))
                ON CONFLICT (scope, period_start, holder) DO UPDATE
                SET granted = l.granted + EXCLUDED.granted, expires_at = EXCLUDED.expires_at;
            RETURN QUERY SELECT v_grant, v_remaining - v_grant;
        END $$
    """,
    # ---- rollups -------------------------------------------------------------------------------
    f"ALTER TABLE usage_daily ADD COLUMN project_id uuid NOT NULL DEFAULT {NIL}",
    f"ALTER TABLE usage_daily ADD COLUMN key_id uuid NOT NULL DEFAULT {NIL}",
    "ALTER TABLE usage_daily DROP CONSTRAINT pk_usage_daily",
    """ALTER TABLE usage_daily ADD CONSTRAINT pk_usage_daily
        PRIMARY KEY (day, tenant_id, project_id, key_id, served_model, front_end)""",
    # A tenant's own views read its days, not every tenant's.
    "CREATE INDEX ix_usage_daily_tenant_day ON usage_daily (tenant_id, day)",
    """
CREATE TABLE usage_daily_tags (
            day date NOT NULL,
            tenant_id uuid NOT NULL,
            tag text NOT NULL,  -- '' for rows that carried no tag
            project_id uuid NOT NULL,
            key_id uuid NOT NULL,
            served_model text NOT NULL,
            front_end text NOT NULL,
            requests bigint NOT NULL DEFAULT 0,
            attempts bigint NOT NULL DEFAULT 0,
            prompt_tokens bigint NOT NULL DEFAULT 0,
            cached_tokens bigint NOT NULL DEFAULT 0,
            completion_tokens bigint NOT NULL DEFAULT 0,
            reasoning_tokens bigint NOT NULL DEFAULT 0,
            provider_cost_usd numeric(20, 10) NOT NULL DEFAULT 0,
            billed_usd numeric(20, 10) NOT NULL DEFAULT 0,
            direct_billed_usd numeric(20, 10) NOT NULL DEFAULT 0,
            CONSTRAINT pk_usage_daily_tags PRIMARY KEY (day, tenant_id, tag, project_id, key_id, served_model, front_end)
        )
    """,
    "CREATE INDEX ix_usage_daily_tags_tenant_tag_day ON usage_daily_tags (tenant_id, tag, day)",
    "TRUNCATE usage_daily",
    f"""
INSERT INTO usage_daily (day, tenant_id, project_id, key_id, served_model, front_end, {_MEASURES})
        SELECT (e.started_at AT TIME ZONE 'UTC')::date, e.tenant_id, COALESCE(e.project_id, {NIL}),
               COALESCE(e.key_id, {NIL}), e.served_model, e.front_end, {_SUMS}
        FROM usage_events e GROUP BY 1, 2, 3, 4, 5, 6
    """,
    f"""
INSERT INTO usage_daily_tags (day, tenant_id, tag, project_id, key_id, served_model, front_end, {_MEASURES})
        SELECT (e.started_at AT TIME ZONE 'UTC')::date, e.tenant_id, tg.tag, COALESCE(e.project_id, {NIL}),
               COALESCE(e.key_id, {NIL}), e.served_model, e.front_end, {_SUMS}
        FROM usage_events e
        CROSS JOIN LATERAL (SELECT DISTINCT t FROM unnest(CASE WHEN cardinality(e.tags) = 0 THEN ARRAY['']
                                                         ELSE e.tags END) AS t) AS tg(tag)
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    """,
    # Per-user views: a bounded scan of one tenant's rows for one end user. Partial, so rows without
    # an end user cost the ledger's insert path nothing.
    """CREATE INDEX ix_usage_events_tenant_user_started ON usage_events (tenant_id, end_user, started_at)
        WHERE end_user IS NOT NULL""",
]


def upgrade() -> None:
    # asyncpg runs one statement per call, so the schema is a list of statements.
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("LOCK TABLE usage_events IN SHARE MODE")
    op.execute("DROP INDEX IF EXISTS ix_usage_events_tenant_user_started")
    op.execute("DROP TABLE IF EXISTS usage_daily_tags")
    op.execute("DROP INDEX IF EXISTS ix_usage_daily_tenant_day")
    op.execute("ALTER TABLE usage_daily DROP CONSTRAINT pk_usage_daily")
    op.execute("""CREATE TEMP TABLE usage_daily_collapsed ON COMMIT DROP AS
        SELECT day, tenant_id, served_model, front_end, sum(requests)::bigint AS requests,
               sum(attempts)::bigint AS attempts, sum(prompt_tokens)::bigint AS prompt_tokens,
               sum(cached_tokens)::bigint AS cached_tokens, sum(completion_tokens)::bigint AS completion_tokens,
               sum(reasoning_tokens)::bigint AS reasoning_tokens, sum(provider_cost_usd) AS provider_cost_usd,
               sum(billed_usd) AS billed_usd, sum(direct_billed_usd) AS direct_billed_usd
        FROM usage_daily GROUP BY 1, 2, 3, 4""")
    op.execute("TRUNCATE usage_daily")
    op.execute("ALTER TABLE usage_daily DROP COLUMN project_id, DROP COLUMN key_id")
    op.execute(f"""INSERT INTO usage_daily (day, tenant_id, served_model, front_end, {_MEASURES})
        SELECT day, tenant_id, served_model, front_end, {_MEASURES} FROM usage_daily_collapsed""")
    op.execute("ALTER TABLE usage_daily ADD CONSTRAINT pk_usage_daily PRIMARY KEY (day, tenant_id, served_model, front_end)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_quota_lease_window(text, timestamptz, text, numeric, numeric,"
               " numeric, integer, interval)")
    op.execute("DELETE FROM budgets WHERE project_id IS NOT NULL OR period = 'rolling'")
    op.execute("DROP INDEX IF EXISTS ix_budgets_project_id")
    op.execute("DROP INDEX IF EXISTS uq_budgets_scope")
    op.execute("ALTER TABLE budgets DROP CONSTRAINT IF EXISTS ck_budgets_level")
    op.execute("ALTER TABLE budgets DROP CONSTRAINT IF EXISTS ck_budgets_window")
    op.execute("ALTER TABLE budgets DROP CONSTRAINT IF EXISTS ck_budgets_period")
    op.execute("ALTER TABLE budgets ADD CONSTRAINT ck_budgets_period CHECK (period IN ('day', 'month'))")
    op.execute("ALTER TABLE budgets DROP COLUMN IF EXISTS window_hours, DROP COLUMN IF EXISTS project_id")
    op.execute(f"CREATE UNIQUE INDEX uq_budgets_scope ON budgets (tenant_id, COALESCE(key_id, {NIL}), period)")
    op.execute("DROP INDEX IF EXISTS uq_api_keys_previous_prefix")
    op.execute("ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS ck_api_keys_previous")
    for column in ("previous_expires_at", "previous_key_hash", "previous_prefix", "rotated_at", "allowed_models",
                   "metadata", "expires_at"):
        op.execute(f"ALTER TABLE api_keys DROP COLUMN IF EXISTS {column}")
    op.execute("ALTER TABLE projects DROP COLUMN IF EXISTS updated_at")
