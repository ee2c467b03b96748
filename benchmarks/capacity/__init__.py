"""Routing under marketplace capacity: a day of traffic with arrival times, real tokenizer counts
and the marketplaces' real limits, served by today's first-come planner, by the planner with the
flat-fee shadow prices, and by an offline oracle that knows the whole trace.

A load is the flat-fee demand (requests whose cheapest route, by their true cost, is the flat fee)
over the pool's capacity (each key's 60 calls a minute or its 10 at once, whichever binds at the
trace's call durations); the day's curve is compressed into --hours, one cycle.

    python -m benchmarks.capacity --seed 1 [--hours 2] [--loads 0.5,1,3,6] [--keys 1] [--json out.json]
"""
