"""Routing under marketplace capacity: a day of traffic with arrival times, real tokenizer counts
and the marketplaces' real limits, served by today's first-come planner, by the planner with the
flat-fee shadow price, and by an offline oracle that knows the whole trace.

    python -m benchmarks.capacity --seed 1 [--hours 4] [--loads 0.5,1,3,6] [--keys 1] [--json out.json]
"""
