"""The scale model's arithmetic: statements sorted by part, windows subtracted, idle cost removed."""

from __future__ import annotations

import pytest

from benchmarks.scale_model import parse_args
from benchmarks.scale_postgres import OTHER, Snapshot, categorise, harness_url
from benchmarks.scale_report import derive, report


@pytest.mark.parametrize(("query", "part"), [
    ('COPY "usage_incoming"("request_id") FROM STDIN (FORMAT binary)', "ledger writes"),
    ("WITH inserted AS (INSERT INTO usage_events (request_id) SELECT 1)", "ledger writes"),
    ("SELECT switchyard_quota_settle($1, $2, $3, $4, $5, $6)", "quota leases (rate limits, budgets)"),
    ("SELECT granted, remaining FROM switchyard_quota_lease($1, $2)", "quota leases (rate limits, budgets)"),
    ("SELECT k.id AS key_id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id", "key cache (auth lookups, LISTEN)"),
    ("SELECT k.id, (SELECT json_agg(b) FROM budgets b) FROM api_keys k", "key cache (auth lookups, LISTEN)"),
    ("SELECT id, limit_usd FROM budgets WHERE tenant_id = $1", "budget rules"),
    ("RESET ALL", "pool and health checks"),
    ("SELECT pg_advisory_unlock_all()", "pool and health checks"),
    ("WITH due AS (SELECT id FROM alert_deliveries)", OTHER),
])
def test_statements_are_sorted_into_the_gateways_parts(query: str, part: str) -> None:
    assert categorise(query) == part


def test_harness_queries_run_as_their_own_role_on_a_private_cluster() -> None:
    url = "postgresql://postgres@127.0.0.1:5999/db"
    assert harness_url(url, object()) == "postgresql://scale_harness@127.0.0.1:5999/db"  # type: ignore[arg-type]
    assert harness_url(url, None) == url


def _snapshot(cpu: float, commits: float, settles: float, copies: float, rows: float) -> Snapshot:
    return Snapshot(
        cpu_s=cpu,
        database={"xact_commit": commits, "xact_rollback": 0.0, "tup_inserted": rows, "tup_updated": 0.0,
                  "tup_deleted": 0.0},
        tables={"usage_events_2026_11": {"n_tup_ins": rows, "n_tup_upd": 0.0, "n_tup_del": 0.0, "n_tup_hot_upd": 0.0}},
        statements={"SELECT switchyard_quota_settle($1)": {"calls": settles, "exec_ms": settles / 10, "rows": settles,
                                                           "wal_bytes": 0.0},
                    'COPY "usage_incoming"': {"calls": copies, "exec_ms": copies, "rows": rows, "wal_bytes": 0.0}},
        wal_bytes=rows * 1000,
    )


def test_per_thousand_requests_removes_what_the_idle_window_cost() -> None:
    idle = _snapshot(2.0, 120.0, 100.0, 0.0, 0.0).minus(_snapshot(1.0, 20.0, 0.0, 0.0, 0.0))
    idle.update(seconds=10.0, harness_transactions=0)
    # 20 s loaded: the idle rate (10 settles/s, 10 commits/s, 0.1 CPU s/s) for 20 s, plus the requests' own.
    loaded = _snapshot(13.0, 2220.0, 1200.0, 100.0, 2000.0).minus(_snapshot(10.0, 200.0, 1000.0, 0.0, 0.0))
    loaded["harness_transactions"] = 20
    run = {"load": {"ok": 2000, "achieved_rate": 100.0}, "seconds": 20.0, "idle": idle, "loaded": loaded,
           "gateway_cpu_s": 4.0, "answered_total": 2010, "rows_total": 2010}
    d = derive(run)
    per = d["per_1000_requests"]
    assert per["postgres_cpu_s"] == pytest.approx((3.0 - 0.1 * 20) * 1000 / 2000)
    assert per["transactions"] == pytest.approx((2020 - 20 - 10 * 20) * 1000 / 2000)  # the harness's 20 left out
    assert per["usage_events_inserted"] == pytest.approx(1000)
    assert d["parts_per_1000_requests"]["quota leases (rate limits, budgets)"]["calls"] == pytest.approx(0)
    assert d["parts_per_1000_requests"]["ledger writes"]["calls"] == pytest.approx(50)
    assert d["idle_per_second"]["postgres_cpu_s"] == pytest.approx(0.1)
    # 0.5 ms of Postgres CPU a request: 2 cores at 70% less the 0.1 idle core carry 2,600 req/s.
    assert d["capacity_rps_at_70pct"]["2"] == 2600
    assert d["rows_lost"] == 0


def test_report_is_markdown_with_every_figure() -> None:
    idle = _snapshot(1.0, 10.0, 10.0, 0.0, 0.0).minus(_snapshot(1.0, 0.0, 0.0, 0.0, 0.0))
    idle.update(seconds=5.0)
    loaded = _snapshot(2.0, 100.0, 10.0, 10.0, 100.0).minus(_snapshot(1.0, 0.0, 0.0, 0.0, 0.0))
    run = {"load": {"ok": 100, "achieved_rate": 10.0, "offered_rate": 10.0, "seconds": 10.0, "statuses": {"200": 100},
                    "latency_ms": {"p50": 1.0, "p99": 2.0}, "client_late_ms_max": 0.0},
           "seconds": 10.0, "idle": idle, "loaded": loaded, "gateway_cpu_s": 1.0, "answered_total": 100,
           "rows_total": 100, "key_changes": 3, "postgres": {"version": "15", "private_cluster": True}}
    results = {"started_at": "now", "config": vars(parse_args([])), "run": run}
    results["derived"] = derive(run)
    text = report(results)
    assert "| Postgres CPU seconds | 10.000 |" in text
    assert "| ledger writes | 100.0 |" in text
    assert "usage rows lost: 0" in text
