"""The serving worker's garbage-collector thresholds.

A request allocates thousands of short-lived containers (dicts, dataclasses, coroutine frames),
so CPython's default thresholds (700, 10, 10) run a young collection every few requests and a
full one, which walks every object the worker holds (the catalog, the modules, the caches), every
hundred young ones. `python -m benchmarks.hotpath` measured (10000, 50, 100) at 0.91 of the
default's CPU per request (medians of four interleaved runs each: 274 against 302 us). Cyclic
garbage still goes, only in larger batches; a 10-minute soak stays flat (README).
"""

from __future__ import annotations

import gc

DEFAULT_GC_THRESHOLD = (10_000, 50, 100)


def tune_gc(threshold: tuple[int, int, int]) -> None:
    """Applied by the serving process's app factory only: tests and tools keep CPython's defaults."""
    gc.set_threshold(*threshold)
