"""The usage journal's fdatasync in a thread of its own, for `wait_for="write"` (service.metering.journal):
the journal thread writes and answers; this one makes the written rows survive a machine crash too."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("switchyard.journal")


class Syncer:
    """fdatasync in a thread of its own (wait_for="write"): each write hands over a duplicate of its
    segment's descriptor, so a segment deleted meanwhile is never synced through a reused number."""

    def __init__(self, on_synced: Callable[[int], None], metrics: Any) -> None:
        self._on_synced = on_synced
        self._metrics = metrics
        self._cond = threading.Condition()
        self._jobs: list[tuple[int, int]] = []
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="usage-journal-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, fd: int, last: int) -> None:
        with self._cond:
            self._jobs.append((fd, last))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                jobs, self._jobs = self._jobs, []
                if not jobs:
                    return
            synced: set[int] = set()
            try:
                for fd, _ in jobs:
                    inode = os.fstat(fd).st_ino
                    if inode not in synced:
                        os.fdatasync(fd)
                        synced.add(inode)
                self._on_synced(max(last for _, last in jobs))
            except OSError as exc:
                # The rows are in the kernel (they survive any process's death), not yet on the disk.
                if self._metrics is not None:
                    self._metrics.usage_journal_errors.labels("sync").inc()
                log.error("usage_journal_sync_failed", error=type(exc).__name__)
            finally:
                for fd, _ in jobs:
                    os.close(fd)
