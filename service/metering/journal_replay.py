"""Replay of usage journal files no live process holds (service.metering.journal): a dead worker's, a
whole server's after kill -9, or segments a process handed off in a long outage.

A file is claimed with `flock` (never one a live process holds), read a batch of lines at a time so
memory stays bounded, and deleted only once every row is in Postgres; writing a row twice is
harmless (the ledger is idempotent on request id and attempt). A line that does not parse -- the torn
last line of a process killed mid-write, whose request was never answered -- is skipped, logged and
counted.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

import orjson
import structlog

from service.metering.events import UsageEvent
from service.metering.journal import SUFFIX, encode

log = structlog.get_logger("switchyard.journal")


class Claimed:
    """A journal file this process holds the lock on, read a batch at a time (blocking: call it in a
    thread). `finish()` deletes it once every row is stored; `release()` leaves it for a later try."""

    def __init__(self, path: Path, file: IO[bytes], metrics: Any = None) -> None:
        self.path = path
        self._file = file
        self._metrics = metrics
        self.torn = 0

    def read(self, rows: int) -> list[UsageEvent]:
        events: list[UsageEvent] = []
        while len(events) < rows:
            line = self._file.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                events.append(UsageEvent.from_json(orjson.loads(line)))
            except (ValueError, KeyError, TypeError):
                # A line cut by a crash mid-write: its request was never answered (nor acknowledged).
                self.torn += 1
                if self._metrics is not None:
                    self._metrics.usage_journal_errors.labels("torn_line").inc()
                log.error("usage_journal_line_unreadable", path=str(self.path), complete=line.endswith(b"\n"))
        return events

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)
        self._file.close()

    def release(self) -> None:
        self._file.close()


def orphans(directory: Path | None, legacy: tuple[Path, ...] = ()) -> list[Path]:
    """Journal files that may belong to no live process (blocking). `legacy`: the spill files of
    versions before the journal, replayed the same way."""
    found = sorted(directory.glob(f"*{SUFFIX}")) if directory is not None and directory.is_dir() else []
    for path in legacy:
        found += sorted(path.parent.glob(f"{path.name}.replaying-*"))
        if path.exists():
            found.append(path)
    return found


def claim(path: Path, metrics: Any = None) -> Claimed | None:
    """The file, locked by this process, or None while a live process holds it or once it is gone."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Its owner may have deleted it (all stored) between our open and our lock.
        if os.fstat(file.fileno()).st_nlink == 0:
            file.close()
            return None
    except BlockingIOError:
        file.close()
        return None
    except BaseException:
        file.close()
        raise
    return Claimed(path, file, metrics)


def set_aside(journal_dir: Path, event: UsageEvent) -> None:
    """Keeps a row Postgres refuses (blocking), under `rejected/`, which replay never reads."""
    path = journal_dir / "rejected" / f"{os.getpid()}{SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(encode(event))
        f.flush()
        os.fsync(f.fileno())
