"""python -m benchmarks.capacity: run, print the table, optionally write the figures as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.capacity.run import Config, run

DEFAULT = Config()
POLICIES = ("greedy", "shadow price", "oracle", "oracle, no limits")


def render(result: dict[str, Any]) -> str:
    c = result["config"]
    cal = result["calibration"]
    shape = result["shape"]
    bursts = ", ".join(f"@{b['start_min']}min {b['minutes']}min x{b['x']} (tenant {b['tenant']})"
                       for b in shape["bursts"]) or "none"
    lines = [
        (f"Routing under capacity: seed {c['seed']}, {c['hours']} h (one diurnal cycle), {c['keys']} xpay key(s) "
         f"x {c['rpm_per_key']}/min, {c['concurrency_per_key']} at once; Orthogonal markup "
         f"{c['orthogonal_markup']}, no Orthogonal limits (none documented)"),
        (f"trace shape: diurnal peak {shape['diurnal']['peak_over_mean']}x / trough "
         f"{shape['diurnal']['trough_over_mean']}x the mean; bursts: {bursts}; {shape['tenants']} tenants"),
        (f"load = flat-fee-worthy requests (the flat fee truly cheapest) per minute over the pool's capacity: "
         f"{cal['flat_fee_share'] * 100:.1f}% of requests, calls of {cal['mean_flat_call_seconds']} s on average, "
         f"capacity {cal['capacity_per_minute']} calls/min"),
        "",
        (f"{'load':>5} {'req/min':>8} {'requests':>9}  {'policy':<18}{'cost USD':>11}{'saves vs direct':>16}"
        f"{'gap to oracle':>15}{'of oracle saving':>18}{'flat calls':>11}"),
    ]
    for row in result["loads"]:
        first = True
        for name in [n for n in POLICIES if n in row["policies"]] + [n for n in row["policies"] if n not in POLICIES]:
            p = row["policies"][name]
            head = (f"{row['load']:>5} {row['requests_per_minute']:>8} {row['requests']:>9}  " if first
                    else " " * 26)
            lines.append(f"{head}{name:<18}{p['cost_usd']:>11}{p['savings_vs_direct_pct']:>15}%"
                         f"{p['gap_to_oracle_pct']:>14}%{p['share_of_oracle_savings_pct']:>17}%{p['flat_fee_calls']:>11}")
            first = False
        g, s = row["policies"]["greedy"], row["policies"]["shadow price"]
        per_call, per_second = s.get("price_per_call_usd", {}), s.get("price_per_second_usd", {})
        lines.append(
            " " * 26 + f"direct {row['direct_cost_usd']} USD over {row['direct_priced_requests']} requests with a "
            f"Baseten price; unserved greedy {g['unserved']}, shadow {s['unserved']}; plans finding xpay full: "
            f"greedy {g['plans_with_flat_fee_full']}, shadow {s['plans_with_flat_fee_full']}; shadow prices median "
            f"{per_call.get('median')} USD/call + {per_second.get('median')} USD/s held; oracle {row['oracle_solver']['status']!r} "
            f"in {row['oracle_solver']['seconds']} s (bound on saving {row['oracle_solver']['bound_saving_usd']}, "
            f"MILP {row['oracle_solver']['milp_saving_usd']} USD)")
        lost = row.get("where_lost")
        if lost is not None:
            full, out, extra = lost["full_pool"], lost["priced_out"], lost["taken_instead"]
            density = lost["median_usd_per_second"]
            lines.append(
                " " * 26 + "the oracle's flat-fee calls the allocator did not make: "
                f"{full['requests']} found the pool full ({full['saving_usd']} USD of saving), "
                f"{out['requests']} priced out ({out['saving_usd']} USD); its calls the oracle did not make: "
                f"{extra['requests']} ({extra['saving_usd']} USD); median saving per second held, those a full "
                f"pool turned away {density['full_pool']} USD, the allocator's {density['allocator']} USD")
        ref = row.get("online_reference")
        if ref is not None:
            lines.append(
                " " * 26 + f"online reference (knows each request's true saving and call length, and the oracle's own "
                f"threshold per 5 minutes; decides at arrival): {ref['share_of_oracle_flat_saving_pct']}% of the "
                f"oracle's flat-fee saving, {ref['gap_to_oracle_pct']}% above the oracle, "
                f"{ref['flat_fee_calls']} calls")
        lines.append("")
    lines.append(f"run in {result['seconds']['total']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT.seed)
    parser.add_argument("--hours", type=float, default=DEFAULT.hours,
                        help="length of the simulated day (one diurnal cycle); 24 for a real day")
    parser.add_argument("--loads", default=",".join(str(x) for x in DEFAULT.loads),
                        help="flat-fee demand over the pool's capacity, comma-separated")
    parser.add_argument("--keys", type=int, default=DEFAULT.keys, help="xpay keys in the pool")
    parser.add_argument("--rpm", type=int, default=DEFAULT.rpm, help="calls a minute per key")
    parser.add_argument("--concurrency", type=int, default=DEFAULT.concurrency, help="calls at once per key")
    parser.add_argument("--markup", default=str(DEFAULT.markup), help="Orthogonal's charge over per-token prices")
    parser.add_argument("--oracle-seconds", type=float, default=DEFAULT.oracle_seconds,
                        help="time limit for each oracle solve")
    parser.add_argument("--diagnose", action="store_true",
                        help="also run the planner with no capacity limits (what estimation alone costs)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    config = Config(seed=args.seed, hours=args.hours, loads=tuple(float(x) for x in args.loads.split(",")),
                    keys=args.keys, rpm=args.rpm, concurrency=args.concurrency, markup=Decimal(args.markup),
                    oracle_seconds=args.oracle_seconds, diagnose=args.diagnose)
    result = run(config, progress=lambda row: print(f"load {row['load']}: {row['requests']} requests, "
                                                     f"{row['seconds']}", file=sys.stderr, flush=True))
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
