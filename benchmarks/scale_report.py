"""The scale model's figures: Postgres's cost per 1,000 gateway requests, by part, and what one Postgres carries.

Per 1,000 requests means marginal: what the measured window cost less what the idle window cost
for as long (the instances' background work goes on whatever the rate), over the requests answered.
"""

from __future__ import annotations

from typing import Any

from benchmarks.scale_postgres import CATEGORIES, OTHER, categorise

# The share of a Postgres's cores a capacity estimate plans to use: headroom for checkpoints,
# autovacuum, reports and a burst.
PLANNED_UTILISATION = 0.7
CORES = (2, 4, 8, 16, 32)


def _by_category(statements: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for query, figures in statements.items():
        bucket = out.setdefault(categorise(query), {"calls": 0.0, "exec_ms": 0.0, "rows": 0.0, "wal_bytes": 0.0})
        for key in bucket:
            bucket[key] += figures.get(key, 0.0)
    return out


def _totals(window: dict[str, Any]) -> dict[str, float]:
    db = window["database"]
    usage_inserts = sum(t["n_tup_ins"] for name, t in window["tables"].items() if name.startswith("usage_events"))
    return {
        "statements": sum(s["calls"] for s in window["statements"].values()),
        "statement_exec_ms": sum(s["exec_ms"] for s in window["statements"].values()),
        "transactions": db.get("xact_commit", 0) + db.get("xact_rollback", 0) - window.get("harness_transactions", 0),
        "rows_written": db.get("tup_inserted", 0) + db.get("tup_updated", 0) + db.get("tup_deleted", 0),
        "rows_inserted": db.get("tup_inserted", 0),
        "rows_updated": db.get("tup_updated", 0),
        "usage_events_inserted": usage_inserts,
        "wal_bytes": window["wal_bytes"],
        "postgres_cpu_s": window["postgres_cpu_s"],
    }


def derive(run: dict[str, Any]) -> dict[str, Any]:
    answered = run["load"]["ok"]
    seconds = run["seconds"]
    idle = run.get("idle")
    scale = seconds / idle["seconds"] if idle else 0.0

    def marginal(loaded: float, at_idle: float) -> float:
        return loaded - at_idle * scale

    loaded_totals = _totals(run["loaded"])
    idle_totals = _totals(idle) if idle else dict.fromkeys(loaded_totals, 0.0)
    per_1000 = {k: round(marginal(v, idle_totals[k]) * 1000 / answered, 3) for k, v in loaded_totals.items()}
    idle_per_s = {k: round(v / idle["seconds"], 3) for k, v in idle_totals.items()} if idle else {}
    parts_loaded = _by_category(run["loaded"]["statements"])
    parts_idle = _by_category(idle["statements"]) if idle else {}
    parts = {}
    for name in [n for n, _ in CATEGORIES] + [OTHER]:
        now = parts_loaded.get(name)
        if now is None:
            continue
        then = parts_idle.get(name, {})
        parts[name] = {k: round(marginal(v, then.get(k, 0.0)) * 1000 / answered, 3) for k, v in now.items()}
    tables = {}
    for name, figures in run["loaded"]["tables"].items():
        then = (idle or {}).get("tables", {}).get(name, {})
        tables[name] = {k: round(marginal(v, then.get(k, 0.0)) * 1000 / answered, 2) for k, v in figures.items()
                        if k in ("n_tup_ins", "n_tup_upd")}
    cpu_per_request = per_1000["postgres_cpu_s"] / 1000
    idle_cores = idle_per_s.get("postgres_cpu_s", 0.0)
    capacity = {}
    if cpu_per_request > 0:
        for cores in CORES:
            capacity[str(cores)] = round(max(0.0, cores * PLANNED_UTILISATION - idle_cores) / cpu_per_request)
    return {
        "answered": answered,
        "achieved_rate": run["load"]["achieved_rate"],
        "postgres_cores_loaded": round(run["loaded"]["postgres_cpu_s"] / seconds, 3),
        "gateway_cores_loaded": round(run["gateway_cpu_s"] / seconds, 3),
        "gateway_cpu_ms_per_request": round(run["gateway_cpu_s"] * 1000 / answered, 3),
        "per_1000_requests": per_1000,
        "idle_per_second": idle_per_s,
        "parts_per_1000_requests": parts,
        "tables_per_1000_requests": dict(sorted(tables.items(), key=lambda kv: -sum(kv[1].values()))),
        "capacity_rps_at_70pct": capacity,
        "rows_lost": max(0, run["answered_total"] - run["rows_total"]),
        "commits_per_second_loaded": round(loaded_totals["transactions"] / seconds, 1),
    }


def _n(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def report(results: dict[str, Any]) -> str:
    """Markdown, to be pasted into docs/scale.md as it stands."""
    d, run, cfg = results["derived"], results["run"], results["config"]
    load = run["load"]
    lines = [
        (f"Scale model, {results['started_at']}: {cfg['instances']} instances x {cfg['workers']} workers, "
         f"{cfg['tenants']} tenants x {cfg['keys']} keys, Postgres {run['postgres']['version']} "
         f"({'private cluster' if run['postgres']['private_cluster'] else 'given admin URL'})"),
        (f"offered {load['offered_rate']:g} req/s for {load['seconds']:.0f} s: answered {load['ok']:,} "
         f"({load['achieved_rate']:,} req/s), statuses {load['statuses']}, "
         f"p50 {_n(load['latency_ms'].get('p50'))} ms, p99 {_n(load['latency_ms'].get('p99'))} ms; "
         f"client late by at most {load['client_late_ms_max']} ms, shed {load.get('shed', 0):,}"),
        (f"Postgres used {d['postgres_cores_loaded']} cores, the gateways {d['gateway_cores_loaded']} cores "
         f"({d['gateway_cpu_ms_per_request']} ms CPU a request); {d['commits_per_second_loaded']} commits/s; "
         f"{run['key_changes']} key change notifications; usage rows lost: {d['rows_lost']}"),
        "",
        "| per 1,000 gateway requests (idle cost removed) | value |",
        "| --- | ---: |",
    ]
    labels = {"statements": "statements", "statement_exec_ms": "statement execution time (ms)",
              "transactions": "transactions", "rows_written": "rows written (inserted + updated + deleted)",
              "rows_inserted": "rows inserted", "rows_updated": "rows updated",
              "usage_events_inserted": "usage_events rows inserted", "wal_bytes": "WAL bytes",
              "postgres_cpu_s": "Postgres CPU seconds"}
    for key, label in labels.items():
        lines.append(f"| {label} | {_n(d['per_1000_requests'][key], 3)} |")
    lines += ["", "| part of the gateway | statements | exec ms | rows | WAL bytes |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, p in d["parts_per_1000_requests"].items():
        lines.append(f"| {name} | {_n(p['calls'], 1)} | {_n(p['exec_ms'], 1)} | {_n(p['rows'], 1)} | "
                     f"{_n(p['wal_bytes'], 0)} |")
    lines += ["", "| table | inserts | updates |", "| --- | ---: | ---: |"]
    for name, t in list(d["tables_per_1000_requests"].items())[:10]:
        lines.append(f"| {name} | {_n(t.get('n_tup_ins'), 1)} | {_n(t.get('n_tup_upd'), 1)} |")
    if d["idle_per_second"]:
        i = d["idle_per_second"]
        lines += ["", (f"idle ({cfg['instances']} instances, no requests), a second: "
                       f"{_n(i['statements'], 1)} statements, {_n(i['transactions'], 1)} transactions, "
                       f"{_n(i['postgres_cpu_s'], 3)} Postgres CPU seconds")]
    act = run.get("activity", {})
    if act.get("samples"):
        waits = {k: v for k, v in act["mean"].items() if k.startswith("waiting:")}
        lines += ["", (f"pg_stat_activity over the window ({act['samples']} samples): mean active backends "
                       f"{act['mean'].get('active', 0)}, peak {act['peak_active']}, "
                       f"of {act['mean'].get('backends', 0)} connected; mean waiting: {waits or 'none seen'}")]
    if d["capacity_rps_at_70pct"]:
        lines += ["", "| Postgres cores | gateway req/s at 70% CPU (from CPU per request alone) |", "| ---: | ---: |"]
        lines += [f"| {c} | {_n(v)} |" for c, v in d["capacity_rps_at_70pct"].items()]
    return "\n".join(lines)
