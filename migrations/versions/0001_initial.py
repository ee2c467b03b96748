"""Tenants, keys, budgets, the monthly-partitioned usage ledger, its daily rollup, price versions.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23
"""

from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


STATEMENTS = [
    """
CREATE TABLE tenants (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            status text NOT NULL DEFAULT 'active',
            markup numeric(12, 6) NOT NULL DEFAULT 0,
            allowed_models text[],
            denied_front_ends text[] NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_tenants_name UNIQUE (name),
            CONSTRAINT ck_tenants_status CHECK (status IN ('active', 'disabled')),
            CONSTRAINT ck_tenants_markup CHECK (markup >= 0)
        )
    """,
    """
CREATE TABLE api_keys (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            prefix text NOT NULL,
            key_hash bytea NOT NULL,
            name text,
            rpm_limit integer,
            tpm_limit integer,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz,
            CONSTRAINT uq_api_keys_prefix UNIQUE (prefix),
            CONSTRAINT ck_api_keys_rpm CHECK (rpm_limit IS NULL OR rpm_limit > 0),
            CONSTRAINT ck_api_keys_tpm CHECK (tpm_limit IS NULL OR tpm_limit > 0)
        )
    """,
    """
CREATE INDEX ix_api_keys_tenant_id ON api_keys (tenant_id)
    """,
    """
CREATE TABLE budgets (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            key_id uuid REFERENCES api_keys (id) ON DELETE CASCADE,
            period text NOT NULL,
            limit_usd numeric(20, 10) NOT NULL,
            hard boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_budgets_period CHECK (period IN ('day', 'month')),
            CONSTRAINT ck_budgets_limit CHECK (limit_usd >= 0)
        )
    """,
    """
-- One budget per tenant (or key) and period; NULL key_id means the whole tenant.
        CREATE UNIQUE INDEX uq_budgets_scope ON budgets (tenant_id, COALESCE(key_id, '00000000-0000-0000-0000-000000000000'::uuid), period)
    """,
    """
-- Limits shared by every gateway process (budgets, requests and tokens a minute) are counted
-- here. Each process leases a slice of what remains and spends it in memory, so concurrent
-- requests never pass the limit and the database sees one write per slice, not per request.
CREATE TABLE quota_counters (
            scope text NOT NULL,
            period_start timestamptz NOT NULL,
            used numeric(20, 10) NOT NULL DEFAULT 0,
            CONSTRAINT pk_quota_counters PRIMARY KEY (scope, period_start)
        )
    """,
    """
CREATE TABLE quota_leases (
            scope text NOT NULL,
            period_start timestamptz NOT NULL,
            holder text NOT NULL,
            granted numeric(20, 10) NOT NULL,
            expires_at timestamptz NOT NULL,
            CONSTRAINT pk_quota_leases PRIMARY KEY (scope, period_start, holder)
        )
    """,
    """
-- Grants up to max(need, slice) of what remains (limit - used - other leases), or 0 when even
-- `need` does not fit. Leases of holders that stopped renewing are counted as used: a crashed
-- process may waste a little of a limit, it can never let it be passed.
CREATE FUNCTION switchyard_quota_lease(p_scope text, p_period timestamptz, p_holder text,
            p_limit numeric, p_need numeric, p_slice numeric, p_ttl_seconds integer)
        RETURNS TABLE (granted numeric, remaining numeric) LANGUAGE plpgsql AS $$
        DECLARE
            v_used numeric;
            v_dead numeric;
            v_out numeric;
            v_remaining numeric;
            v_grant numeric;
        BEGIN
            INSERT INTO quota_counters (scope, period_start) VALUES (p_scope, p_period) ON CONFLICT DO NOTHING;
            SELECT c.used INTO v_used FROM quota_counters c
                WHERE c.scope = p_scope AND c.period_start = p_period FOR UPDATE;
            WITH dead AS (
                DELETE FROM quota_leases l WHERE l.scope = p_scope AND l.period_start = p_period
                    AND l.expires_at < now() AND l.holder <> p_holder RETURNING l.granted)
            SELECT COALESCE(sum(dead.granted), 0) INTO v_dead FROM dead;
            IF v_dead > 0 THEN
                v_used := v_used + v_dead;
                UPDATE quota_counters c SET used = v_used WHERE c.scope = p_scope AND c.period_start = p_period;
            END IF;
            SELECT COALESCE(sum(l.granted), 0) INTO v_out FROM quota_leases l
                WHERE l.scope = p_scope AND l.period_start = p_period;
            v_remaining := p_limit - v_used - v_out;
            IF v_remaining < p_need THEN
                RETURN QUERY SELECT 0::numeric, GREATEST(v_remaining, 0);
                RETURN;
            END IF;
            v_grant := LEAST(GREATEST(p_need, p_slice), v_remaining);
            INSERT INTO quota_leases AS l (scope, period_start, holder, granted, expires_at)
                VALUES (p_scope, p_period, p_holder, v_grant, now() + make_interval(secs => p_ttl_seconds))
                ON CONFLICT (scope, period_start, holder) DO UPDATE
                SET granted = l.granted + EXCLUDED.granted, expires_at = EXCLUDED.expires_at;
            RETURN QUERY SELECT v_grant, v_remaining - v_grant;
        END $$
    """,
    """
-- Moves what a holder spent from its lease into the counter, gives back `p_release` unused, and
-- renews the lease. Spending beyond the lease (an estimate that fell short) is still counted.
CREATE FUNCTION switchyard_quota_settle(p_scope text, p_period timestamptz, p_holder text,
            p_used numeric, p_release numeric, p_ttl_seconds integer)
        RETURNS numeric LANGUAGE plpgsql AS $$
        DECLARE
            v_used numeric;
        BEGIN
            INSERT INTO quota_counters (scope, period_start) VALUES (p_scope, p_period) ON CONFLICT DO NOTHING;
            UPDATE quota_counters c SET used = c.used + p_used
                WHERE c.scope = p_scope AND c.period_start = p_period RETURNING c.used INTO v_used;
            UPDATE quota_leases l SET granted = GREATEST(l.granted - p_used - p_release, 0),
                    expires_at = now() + make_interval(secs => p_ttl_seconds)
                WHERE l.scope = p_scope AND l.period_start = p_period AND l.holder = p_holder;
            DELETE FROM quota_leases l WHERE l.scope = p_scope AND l.period_start = p_period
                AND l.holder = p_holder AND l.granted <= 0;
            RETURN v_used;
        END $$
    """,
    """
-- The ledger: one row per upstream attempt. The primary key includes started_at because a
        -- partitioned table's unique keys must contain the partition key; a row is built once with
        -- its started_at, so a replay of the same row still collides and is stored once.
        CREATE TABLE usage_events (
            request_id text NOT NULL,
            attempt smallint NOT NULL,
            tenant_id uuid NOT NULL,
            key_id uuid,
            requested_model text NOT NULL,
            served_model text NOT NULL,
            front_end text NOT NULL,
            route text NOT NULL,
            status text NOT NULL,
            error_code text,
            http_status smallint,
            stream boolean NOT NULL,
            client_disconnected boolean NOT NULL DEFAULT false,
            prompt_tokens bigint NOT NULL DEFAULT 0,
            cached_tokens bigint NOT NULL DEFAULT 0,
            completion_tokens bigint NOT NULL DEFAULT 0,
            reasoning_tokens bigint NOT NULL DEFAULT 0,
            provider_cost_usd numeric(20, 10) NOT NULL DEFAULT 0,
            billed_usd numeric(20, 10) NOT NULL DEFAULT 0,
            price_version text NOT NULL,
            cost_source text NOT NULL,
            estimated boolean NOT NULL DEFAULT false,
            upstream_request_id text,
            started_at timestamptz NOT NULL,
            first_token_at timestamptz,
            ended_at timestamptz NOT NULL,
            CONSTRAINT pk_usage_events PRIMARY KEY (request_id, attempt, started_at)
        ) PARTITION BY RANGE (started_at)
    """,
    """
-- Rows outside every monthly partition land here instead of failing the write.
        CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT
    """,
    """
CREATE INDEX ix_usage_events_tenant_started ON usage_events (tenant_id, started_at)
    """,
    """
CREATE TABLE usage_daily (
            day date NOT NULL,
            tenant_id uuid NOT NULL,
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
            CONSTRAINT pk_usage_daily PRIMARY KEY (day, tenant_id, served_model, front_end)
        )
    """,
    """
CREATE TABLE price_versions (
            version text PRIMARY KEY,
            effective_from timestamptz NOT NULL,
            catalog jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
    """,
    """
-- Creates the monthly partitions from this month to months_ahead months on; idempotent,
        -- and run by the service at start and daily so nobody has to remember it.
        CREATE FUNCTION switchyard_ensure_usage_partitions(months_ahead integer)
        RETURNS integer LANGUAGE plpgsql AS $$
        DECLARE
            first_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
            m date;
            name text;
            created integer := 0;
        BEGIN
            FOR i IN 0..months_ahead LOOP
                m := (first_month + make_interval(months => i))::date;
                name := format('usage_events_%s', to_char(m, 'YYYY_MM'));
                IF to_regclass(name) IS NULL THEN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                        name, m::timestamp AT TIME ZONE 'UTC',
                        (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
                    created := created + 1;
                END IF;
            END LOOP;
            RETURN created;
        END $$
    """,
    """
SELECT switchyard_ensure_usage_partitions(2)
    """,
]


def upgrade() -> None:
    # asyncpg runs one statement per call, so the schema is a list of statements.
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS switchyard_ensure_usage_partitions(integer)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_quota_lease(text, timestamptz, text, numeric, numeric, numeric, integer)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_quota_settle(text, timestamptz, text, numeric, numeric, integer)")
    op.execute(
        "DROP TABLE IF EXISTS price_versions, usage_daily, usage_events, quota_leases, quota_counters, budgets, "
        "api_keys, tenants CASCADE"
    )
