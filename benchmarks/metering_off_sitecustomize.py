"""Metering switched off in a gateway under benchmark, without touching production code.

benchmarks/metering_cost.py copies this file as `sitecustomize.py` into a benchmark-only
directory and starts `switchyard serve` with PYTHONPATH pointing there. Python imports
sitecustomize at start-up in every interpreter, so the patches below are in place before the
app is built; granian forks its workers from that process, and they inherit them.

Switched off (replaced by no-ops that only count their calls):
  - service.metering.ledger.UsageWriter.submit: usage rows are dropped instead of queued, so
    nothing is batched, COPYed into Postgres, rolled up or spilled. The writer's background
    task still wakes every flush interval and finds an empty queue.
  - service.metering.admission.Admitter.admit: returns an empty Admission (no rate-limit or
    budget reservation, no budgets lookup, no rate-limit headers).
  - service.metering.admission.Admitter.settle: nothing is settled against the quota leases.
Still on: authentication (key lookup and cache), planning and routing, the upstream call,
the cost computed from the answer's usage and returned to the client, building each attempt's
UsageEvent, Prometheus metrics, request logging, and the QuotaLeaser's background task.

When SWITCHYARD_BENCH_METERING_OFF_COUNTS names a directory, each process writes its counts
there as <pid>.json about once a second, so the benchmark can check that every request went
through the no-ops (and the ledger stayed empty because of them, not because nothing ran).
"""

from __future__ import annotations

import json
import os
import threading
import time
from decimal import Decimal

COUNTS_ENV = "SWITCHYARD_BENCH_METERING_OFF_COUNTS"
NAMES = ("submitted", "admitted", "settled")


class Discarded:
    """What the no-ops swallowed in this process; restarted in each forked worker on first use."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self.counts = dict.fromkeys(NAMES, 0)
        self._started = False

    def add(self, name: str) -> None:
        if self.pid != os.getpid():
            # A forked worker: its parent's counts and thread are not its own.
            self.pid, self.counts, self._started = os.getpid(), dict.fromkeys(NAMES, 0), False
        if not self._started and self.directory:
            self._started = True
            threading.Thread(target=self._write_every_second, name="metering-off-counts", daemon=True).start()
        self.counts[name] += 1

    def _write_every_second(self) -> None:
        # A file write a second, off the event loop's thread: nothing per request.
        path = os.path.join(self.directory, f"{self.pid}.json")
        while True:
            time.sleep(1.0)
            temp = path + ".tmp"
            with open(temp, "w", encoding="utf-8") as f:
                json.dump(dict(self.counts), f)
            os.replace(temp, path)


def install(directory: str | None) -> Discarded:
    from service.metering.admission import Admission, Admitter
    from service.metering.ledger import UsageWriter

    discarded = Discarded(directory)

    def submit(self: UsageWriter, event: object) -> None:
        discarded.add("submitted")

    async def admit(self: Admitter, principal: object, worst_cost: Decimal, worst_tokens: int) -> Admission:
        discarded.add("admitted")
        return Admission()

    def settle(self: Admitter, admission: Admission, cost: Decimal, tokens: int) -> None:
        discarded.add("settled")

    UsageWriter.submit = submit
    Admitter.admit = admit
    Admitter.settle = settle
    return discarded


def read_counts(directory: str) -> dict[str, int]:
    """The counts of every process that wrote them, summed."""
    total = dict.fromkeys(NAMES, 0)
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                for key, value in json.load(f).items():
                    total[key] = total.get(key, 0) + value
    return total


if __name__ == "sitecustomize":
    install(os.environ.get(COUNTS_ENV))
