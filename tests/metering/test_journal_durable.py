"""The journal's durable wait: late answers at the bound when the disk hangs, and cancelled waits
that leave the others answered."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from service.metering import journal as journal_module
from service.metering.journal import Journal
from service.observability.metrics import Metrics
from tests.metering.journal_rows import event
from tests.observability.prometheus_helpers import total


async def test_a_sync_slower_than_the_bound_answers_late_counted_and_then_durable(tmp_path, monkeypatch):
    """A disk that hangs must not hang the answers: each wait gives up after the bound (False,
    counted, logged), the others still wait their own turn, and the rows are durable once the
    sync returns."""
    monkeypatch.setattr(journal_module, "DURABLE_WAIT_SECONDS", 0.3)
    real_sync = os.fdatasync
    release, hung = threading.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    def slow_sync(fd: int) -> None:
        hung.set()
        while not release.is_set():
            time.sleep(0.01)
        real_sync(fd)

    monkeypatch.setattr(journal_module.os, "fdatasync", slow_sync)
    metrics = Metrics()
    journal = Journal(tmp_path / "journal", metrics=metrics)
    journal.start()
    try:
        journal.append(event())
        started = loop.time()
        first = asyncio.ensure_future(journal.durable())
        await asyncio.sleep(0.1)
        journal.append(event())
        second = asyncio.ensure_future(journal.durable())
        assert await first is False
        assert 0.3 <= loop.time() - started < 0.3 + 0.3 / 4 + 0.2
        assert not second.done()  # began 0.1 s later: its own bound, not the first one's
        assert await second is False
        assert hung.is_set()
        text = metrics.exposition().decode()
        assert total(text, "switchyard_usage_journal_errors_total", kind="durable_timeout") == 2
        release.set()
        assert await asyncio.wait_for(journal.durable(), 5) is True
    finally:
        release.set()
        await journal.close()


async def test_a_wait_cancelled_by_its_request_leaves_the_others_answered(tmp_path):
    journal = Journal(tmp_path / "journal")
    journal.start()
    try:
        journal.append(event())
        waits = [asyncio.ensure_future(journal.durable()) for _ in range(5)]
        waits[2].cancel()
        done = await asyncio.gather(*waits, return_exceptions=True)
        assert isinstance(done[2], asyncio.CancelledError)
        assert [d for i, d in enumerate(done) if i != 2] == [True] * 4
    finally:
        await journal.close()
