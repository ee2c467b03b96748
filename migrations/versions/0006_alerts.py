"""Alerts: budget thresholds and spend spikes written to an outbox with the spend that caused them.

Events are inserted by the same database calls that record spend, so an event exists if and only
if its spend committed: `switchyard_quota_settle` (budget thresholds), `switchyard_quota_lease`
(a budget that could not cover a request) and the ledger's insert statement, through
`switchyard_alert_hourly_spend` (a spike in a tenant's hourly billed spend). Each event fans out
to one delivery row per webhook (the tenant's and the operator's) that the gateways' delivery
workers claim with FOR UPDATE SKIP LOCKED.

The two quota functions are the ones of 0001_initial with one PERFORM line added each (marked
`-- alerts:`); whoever changes them later keeps those lines.

Revision ID: 0006_alerts
Revises: 0005_projects_budgets
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006_alerts"
down_revision = "0005_projects_budgets"
branch_labels = None
depends_on = None


STATEMENTS = [
    """
-- One webhook per tenant, and one for the operator (tenant_id NULL). The secret signs every
-- delivery (HMAC-SHA256), so it is kept as written, not hashed.
CREATE TABLE alert_webhooks (
            id uuid PRIMARY KEY,
            tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
            url text NOT NULL,
            secret text NOT NULL,
            source text NOT NULL DEFAULT 'api',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_alert_webhooks_source CHECK (source IN ('api', 'env'))
        )
    """,
    """
CREATE UNIQUE INDEX uq_alert_webhooks_owner
            ON alert_webhooks (COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid))
    """,
    """
-- A budget's own thresholds in percent of its limit; without a row, 50, 80 and 100.
CREATE TABLE alert_budget_thresholds (
            budget_id uuid PRIMARY KEY REFERENCES budgets (id) ON DELETE CASCADE,
            percents numeric[] NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
    """,
    """
-- No foreign key to tenants: the ledger may replay rows of a tenant deleted since, and an
-- alert must never make a usage batch fail.
CREATE TABLE alert_events (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            kind text NOT NULL,
            dedupe_key text NOT NULL,
            data jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_alert_events_dedupe_key UNIQUE (dedupe_key)
        )
    """,
    "CREATE INDEX ix_alert_events_created_at ON alert_events (created_at DESC)",
    "CREATE INDEX ix_alert_events_tenant_created ON alert_events (tenant_id, created_at DESC)",
    """
-- The outbox proper: one row per event and webhook. A worker claims a due row by moving
-- next_attempt_at one lease ahead and counting the attempt; if it dies, the row is due again
-- when the lease runs out.
CREATE TABLE alert_deliveries (
            id uuid PRIMARY KEY,
            event_id uuid NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
            webhook_id uuid REFERENCES alert_webhooks (id) ON DELETE SET NULL,
            target text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_attempt_at timestamptz,
            last_status_code integer,
            last_error text,
            delivered_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_alert_deliveries_status CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
            CONSTRAINT ck_alert_deliveries_target CHECK (target IN ('tenant', 'operator'))
        )
    """,
    "CREATE INDEX ix_alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending'",
    "CREATE INDEX ix_alert_deliveries_event_id ON alert_deliveries (event_id)",
    """
-- Every attempt, by whom and with what outcome; the key makes an attempt number one claim.
CREATE TABLE alert_delivery_attempts (
            delivery_id uuid NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
            attempt integer NOT NULL,
            holder text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            ended_at timestamptz,
            status_code integer,
            error text,
            CONSTRAINT pk_alert_delivery_attempts PRIMARY KEY (delivery_id, attempt)
        )
    """,
    """
-- A tenant's billed spend per UTC hour, kept by the ledger's insert statement (the spike rule's norm).
CREATE TABLE tenant_spend_hourly (
            tenant_id uuid NOT NULL,
            hour timestamptz NOT NULL,
            billed_usd numeric(20, 10) NOT NULL DEFAULT 0,
            CONSTRAINT pk_tenant_spend_hourly PRIMARY KEY (tenant_id, hour)
        )
    """,
    """
-- Each tenant-hour's norm, computed once (at the hour's first judgment) rather than on every batch.
CREATE TABLE tenant_spend_norms (
            tenant_id uuid NOT NULL,
            hour timestamptz NOT NULL,
            norm_usd numeric(20, 10),
            hours integer NOT NULL,
            CONSTRAINT pk_tenant_spend_norms PRIMARY KEY (tenant_id, hour)
        )
    """,
    """
-- The norm exists from the first hour after the upgrade: the last eight days, from the ledger.
INSERT INTO tenant_spend_hourly (tenant_id, hour, billed_usd)
        SELECT tenant_id, date_trunc('hour', started_at, 'UTC'), sum(billed_usd)
        FROM usage_events WHERE started_at >= now() - interval '8 days'
        GROUP BY 1, 2
    """,
    """
CREATE FUNCTION switchyard_alert_utc(p_at timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
            SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        $$
    """,
    """
-- Records an event once per dedupe key, with one delivery per webhook of its tenant and the
-- operator's; returns the new event's id, or NULL when the key was already there.
CREATE FUNCTION switchyard_alert_emit(p_tenant uuid, p_kind text, p_dedupe text, p_data jsonb)
        RETURNS uuid LANGUAGE plpgsql AS $$
        DECLARE
            v_id uuid;
        BEGIN
            INSERT INTO alert_events (id, tenant_id, kind, dedupe_key, data)
                VALUES (gen_random_uuid(), p_tenant, p_kind, p_dedupe, p_data)
                ON CONFLICT (dedupe_key) DO NOTHING
                RETURNING id INTO v_id;
            IF v_id IS NOT NULL THEN
                INSERT INTO alert_deliveries (id, event_id, webhook_id, target)
                    SELECT gen_random_uuid(), v_id, w.id,
                           CASE WHEN w.tenant_id IS NULL THEN 'operator' ELSE 'tenant' END
                    FROM alert_webhooks w WHERE w.tenant_id = p_tenant OR w.tenant_id IS NULL;
            END IF;
            RETURN v_id;
        END $$
    """,
    """
-- A budget's counter went from p_before to p_after: one event per threshold it is at or past,
-- once per budget, period, limit and threshold. At-or-past rather than just-crossed, so a
-- changed limit or threshold list is judged at the next spend, and nothing is missed when
-- spend reached the counter some other way (a dead holder's lease counted as used).
CREATE FUNCTION switchyard_alert_budget_spend(p_scope text, p_period timestamptz, p_before numeric,
            p_after numeric)
        RETURNS integer LANGUAGE plpgsql AS $$
        DECLARE
            v_budget record;
            v_percent numeric;
            v_emitted integer := 0;
            v_window numeric;
            v_crossing boolean := false;
        BEGIN
            IF p_after <= p_before
                    OR p_scope !~* '^budget:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
                RETURN 0;
            END IF;
            SELECT b.id, b.tenant_id, b.limit_usd, b.hard, b.period, b.window_hours,
                   COALESCE(t.percents, '{50,80,100}'::numeric[]) AS percents
                INTO v_budget
                FROM budgets b LEFT JOIN alert_budget_thresholds t ON t.budget_id = b.id
                WHERE b.id = substr(p_scope, 8)::uuid;
            IF NOT FOUND THEN
                RETURN 0;
            END IF;
            IF v_budget.period = 'rolling' THEN
                -- A rolling budget counts in buckets: judge the window that ends at this bucket,
                -- and only a crossing (the window's spend before this settle was below the mark).
                SELECT COALESCE(sum(c.used), 0) INTO v_window FROM quota_counters c
                    WHERE c.scope = p_scope AND c.period_start <= p_period
                      AND c.period_start > p_period - make_interval(hours => v_budget.window_hours);
                v_crossing := true;
                p_before := v_window - (p_after - p_before);
                p_after := v_window;
            END IF;
            FOREACH v_percent IN ARRAY v_budget.percents LOOP
                CONTINUE WHEN p_after < v_budget.limit_usd * v_percent / 100;
                CONTINUE WHEN v_crossing AND p_before >= v_budget.limit_usd * v_percent / 100;
                IF switchyard_alert_emit(
                        v_budget.tenant_id, 'budget.threshold',
                        format('budget.threshold:%s:%s:%s:%s', v_budget.id, switchyard_alert_utc(p_period),
                               trim_scale(v_budget.limit_usd), trim_scale(v_percent)),
                        jsonb_build_object(
                            'budget_id', v_budget.id,
                            'period_start', switchyard_alert_utc(p_period),
                            'limit_usd', trim_scale(v_budget.limit_usd)::text,
                            'spent_usd', trim_scale(p_after)::text,
                            'threshold_percent', trim_scale(v_percent),
                            'hard', v_budget.hard)) IS NOT NULL THEN
                    v_emitted := v_emitted + 1;
                END IF;
            END LOOP;
            RETURN v_emitted;
        END $$
    """,
    """
-- A budget could not cover a request's worst case (a hard budget refuses it with 402, a soft
-- one serves and flags it): once per budget, period and limit. Spend alone rarely reaches 100%
-- of a hard budget, since requests are refused while their bound does not fit.
CREATE FUNCTION switchyard_alert_budget_refused(p_scope text, p_period timestamptz, p_used numeric,
            p_leased numeric, p_need numeric)
        RETURNS uuid LANGUAGE plpgsql AS $$
        DECLARE
            v_budget record;
        BEGIN
            IF p_scope !~* '^budget:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
                RETURN NULL;
            END IF;
            SELECT b.id, b.tenant_id, b.limit_usd, b.hard INTO v_budget
                FROM budgets b WHERE b.id = substr(p_scope, 8)::uuid;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            RETURN switchyard_alert_emit(
                v_budget.tenant_id, 'budget.limit_reached',
                format('budget.limit_reached:%s:%s:%s', v_budget.id, switchyard_alert_utc(p_period),
                       trim_scale(v_budget.limit_usd)),
                jsonb_build_object(
                    'budget_id', v_budget.id,
                    'period_start', switchyard_alert_utc(p_period),
                    'limit_usd', trim_scale(v_budget.limit_usd)::text,
                    'spent_usd', trim_scale(p_used)::text,
                    'leased_usd', trim_scale(p_leased)::text,
                    'request_bound_usd', trim_scale(p_need)::text,
                    'hard', v_budget.hard));
        END $$
    """,
    """
-- The spike rule, judged whenever the ledger adds to a tenant's hour: the hour's billed spend is
-- at least p_min_usd and at least p_factor times the median of the tenant's hours with spend
-- among the p_window_hours before it, given at least p_min_hours of those. Once per tenant-hour.
-- The norm is taken at the hour's first judgment and kept for the hour: the ledger's hot path
-- then pays one key lookup per tenant and batch, not a median over a week of hours.
CREATE FUNCTION switchyard_alert_hourly_spend(p_tenant uuid, p_hour timestamptz, p_billed numeric,
            p_factor numeric, p_min_usd numeric, p_min_hours integer, p_window_hours integer)
        RETURNS uuid LANGUAGE plpgsql AS $$
        DECLARE
            v_key text;
            v_norm numeric;
            v_hours integer;
        BEGIN
            IF p_factor <= 0 OR p_billed < p_min_usd THEN
                RETURN NULL;
            END IF;
            v_key := format('spend.spike:%s:%s', p_tenant, switchyard_alert_utc(p_hour));
            IF EXISTS (SELECT 1 FROM alert_events e WHERE e.dedupe_key = v_key) THEN
                RETURN NULL;
            END IF;
            SELECT n.norm_usd, n.hours INTO v_norm, v_hours
                FROM tenant_spend_norms n WHERE n.tenant_id = p_tenant AND n.hour = p_hour;
            IF NOT FOUND THEN
                SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY h.billed_usd), count(*)
                    INTO v_norm, v_hours
                    FROM tenant_spend_hourly h
                    WHERE h.tenant_id = p_tenant AND h.billed_usd > 0
                      AND h.hour >= p_hour - make_interval(hours => p_window_hours) AND h.hour < p_hour;
                INSERT INTO tenant_spend_norms (tenant_id, hour, norm_usd, hours)
                    VALUES (p_tenant, p_hour, v_norm, v_hours) ON CONFLICT DO NOTHING;
            END IF;
            IF v_norm IS NULL OR v_hours < p_min_hours OR p_billed < p_factor * v_norm THEN
                RETURN NULL;
            END IF;
            RETURN switchyard_alert_emit(
                p_tenant, 'spend.spike', v_key,
                jsonb_build_object(
                    'hour_start', switchyard_alert_utc(p_hour),
                    'billed_usd', trim_scale(p_billed)::text,
                    'norm_usd', trim_scale(v_norm)::text,
                    'factor', trim_scale(p_factor)::text,
                    'window_hours', p_window_hours,
                    'hours_in_norm', v_hours));
        END $$
    """,
    """
CREATE OR REPLACE FUNCTION switchyard_quota_lease(p_scope text, p_period timestamptz, p_holder text,
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
                PERFORM switchyard_alert_budget_spend(p_scope, p_period, v_used - v_dead, v_used);  -- alerts:
            END IF;
            SELECT COALESCE(sum(l.granted), 0) INTO v_out FROM quota_leases l
                WHERE l.scope = p_scope AND l.period_start = p_period;
            v_remaining := p_limit - v_used - v_out;
            IF v_remaining < p_need THEN
                PERFORM switchyard_alert_budget_refused(p_scope, p_period, v_used, v_out, p_need);  -- alerts:
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
CREATE OR REPLACE FUNCTION switchyard_quota_settle(p_scope text, p_period timestamptz, p_holder text,
            p_used numeric, p_release numeric, p_ttl_seconds integer)
        RETURNS numeric LANGUAGE plpgsql AS $$
        DECLARE
            v_used numeric;
        BEGIN
            INSERT INTO quota_counters (scope, period_start) VALUES (p_scope, p_period) ON CONFLICT DO NOTHING;
            UPDATE quota_counters c SET used = c.used + p_used
                WHERE c.scope = p_scope AND c.period_start = p_period RETURNING c.used INTO v_used;
            PERFORM switchyard_alert_budget_spend(p_scope, p_period, v_used - p_used, v_used);  -- alerts:
            UPDATE quota_leases l SET granted = GREATEST(l.granted - p_used - p_release, 0),
                    expires_at = now() + make_interval(secs => p_ttl_seconds)
                WHERE l.scope = p_scope AND l.period_start = p_period AND l.holder = p_holder;
            DELETE FROM quota_leases l WHERE l.scope = p_scope AND l.period_start = p_period
                AND l.holder = p_holder AND l.granted <= 0;
            RETURN v_used;
        END $$
    """,
]

# A rolling budget's lease (0005_projects_budgets) raises the same alert when it cannot grant.
STATEMENTS.append("""
CREATE OR REPLACE FUNCTION switchyard_quota_lease_window(p_scope text, p_period timestamptz, p_holder text,
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
                PERFORM switchyard_alert_budget_refused(p_scope, p_period, v_peak, 0, p_need);  -- alerts:
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
""")

# The quota functions as 0001_initial and 0005 created them, restored on downgrade.
_LEASE_WINDOW_0005 = STATEMENTS[-1].replace(
    "\n                PERFORM switchyard_alert_budget_refused(p_scope, p_period, v_peak, 0, p_need);  -- alerts:", ""
)
_LEASE_0001 = STATEMENTS[-3].replace(
    "\n                PERFORM switchyard_alert_budget_spend(p_scope, p_period, v_used - v_dead, v_used);  -- alerts:", ""
).replace(
    "\n                PERFORM switchyard_alert_budget_refused(p_scope, p_period, v_used, v_out, p_need);  -- alerts:", ""
)
_SETTLE_0001 = STATEMENTS[-2].replace(
    "\n            PERFORM switchyard_alert_budget_spend(p_scope, p_period, v_used - p_used, v_used);  -- alerts:", ""
)


def upgrade() -> None:
    # asyncpg runs one statement per call, so the schema is a list of statements.
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute(_LEASE_WINDOW_0005)
    op.execute(_LEASE_0001)
    op.execute(_SETTLE_0001)
    op.execute("DROP FUNCTION IF EXISTS switchyard_alert_hourly_spend(uuid, timestamptz, numeric, numeric, numeric, integer, integer)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_alert_budget_refused(text, timestamptz, numeric, numeric, numeric)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_alert_budget_spend(text, timestamptz, numeric, numeric)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_alert_emit(uuid, text, text, jsonb)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_alert_utc(timestamptz)")
    op.execute(
        "DROP TABLE IF EXISTS tenant_spend_norms, tenant_spend_hourly, alert_delivery_attempts, alert_deliveries, alert_events, "
        "alert_budget_thresholds, alert_webhooks"
    )
