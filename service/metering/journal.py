"""A per-process, append-only journal of usage rows: the row is on disk before the answer's last byte.

Each process appends JSON lines to its own segment files under `<data_dir>/journal/`. A dedicated
thread writes whatever is pending and fdatasyncs it, then starts over with whatever arrived during
that sync: group commit without a timer, so one sync covers every row that queued behind it and an
idle process syncs the moment a row arrives. `await journal.durable()` returns once every row
appended before the call is synced.

`wait_for="write"` answers once the rows are written into the kernel, the fdatasync following in a
thread of its own: a row then survives kill -9 of any process (the page cache is the kernel's), and a
machine crash may lose the rows of the last sync, in exchange for not waiting on the disk's flush
(measured: benchmarks/journal_cost.py).

A process holds an exclusive `flock` on every segment it still owns. A segment is deleted once all
of its rows are in Postgres; one whose owner died (kill -9, a worker lost) is unlocked by the
kernel, so any process can claim it with `flock` and replay it (idempotently) into Postgres.
Segments are created under a temporary name, locked, then renamed, so no replayer ever sees a live
segment unlocked (service.metering.journal_replay reads them back).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import heapq
import itertools
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import structlog

from service.metering.events import UsageEvent
from service.metering.journal_sync import Syncer

log = structlog.get_logger("switchyard.journal")

SUFFIX = ".jsonl"
# How long a request waits for its row to reach the disk before it is answered anyway (the row is
# still queued for Postgres): a broken disk must not stop the gateway.
DURABLE_WAIT_SECONDS = 5.0


def _late_check_seconds() -> float:
    # A wait is answered late between the bound and a quarter of it (at most a second) after.
    return min(1.0, DURABLE_WAIT_SECONDS / 4)


def _default(value: object) -> object:
    # Decimal, and UUID subclasses orjson does not take as UUIDs (asyncpg's).
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"cannot journal {type(value).__name__}")


def encode(event: UsageEvent) -> bytes:
    """One journal line; `UsageEvent.from_json(orjson.loads(line))` reads it back equal."""
    return orjson.dumps(event, default=_default, option=orjson.OPT_APPEND_NEWLINE)


@dataclass(slots=True)
class _Segment:
    path: Path
    fd: int
    created: float
    first_seq: int = 0
    last_seq: int = 0  # the last row synced into it
    size: int = 0


@dataclass(slots=True)
class _Call:
    """Work for the journal thread, with the loop future that hears its result."""

    run: Callable[[], int]
    future: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop = field(repr=False)


class Journal:
    def __init__(self, directory: Path, *, wait_for: str = "sync", segment_bytes: int = 8 << 20,
                 idle_seconds: float = 0.5, metrics: Any = None) -> None:
        if wait_for not in ("sync", "write"):
            raise ValueError(f"wait_for must be sync or write, got {wait_for!r}")
        self.directory = directory
        self._syncer = Syncer(self._on_synced, metrics) if wait_for == "write" else None
        self._segment_bytes = segment_bytes
        self._idle_seconds = idle_seconds
        self._metrics = metrics
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._appended = 0  # seq of the last row appended
        self._written = 0  # seq of the last row written into the kernel
        self._synced = 0  # seq of the last row on disk
        self._committed = 0  # rows up to this seq are in Postgres (their segments may go)
        self._calls: list[_Call] = []
        self._closing = False
        self._active: _Segment | None = None
        self._sealed: deque[_Segment] = deque()
        self._waiters: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._late: deque[tuple[float, asyncio.Future[bool]]] = deque()
        self._late_timer: asyncio.TimerHandle | None = None
        self._tiebreak = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._last_write = 0.0
        self.syncs = 0
        self.errors = 0

    # ---- the event loop's side ------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="usage-journal", daemon=True)
        self._thread.start()
        if self._syncer is not None:
            self._syncer.start()

    def append(self, event: UsageEvent) -> int:
        """Queues the row for the next sync (no disk I/O here); returns its sequence number."""
        line = encode(event)
        with self._cond:
            self._appended += 1
            self._pending.append(line)
            self._cond.notify()
            return self._appended

    @property
    def appended(self) -> int:
        return self._appended

    @property
    def synced(self) -> int:
        return self._synced

    @property
    def _durable(self) -> int:
        return self._synced if self._syncer is None else self._written

    async def durable(self, seq: int | None = None) -> bool:
        """Waits until row `seq` (default: every row appended so far) is on disk; False if that took
        longer than DURABLE_WAIT_SECONDS (logged and counted; the caller answers anyway)."""
        target = self._appended if seq is None else seq
        if self._durable >= target:
            return True
        loop = asyncio.get_running_loop()
        # True once the row is on disk, False once it is late. One timer for all the waits rather
        # than an asyncio.timeout and a shield around each: that was 3% of a worker's request time.
        future: asyncio.Future[bool] = loop.create_future()
        heapq.heappush(self._waiters, (target, next(self._tiebreak), future))
        self._wake_waiters()  # the thread may have synced between the check and the push
        if future.done():
            return True
        self._late.append((loop.time() + DURABLE_WAIT_SECONDS, future))
        if self._late_timer is None:
            self._late_timer = loop.call_later(_late_check_seconds(), self._check_late, loop)
        if await future:
            return True
        if self._metrics is not None:
            self._metrics.usage_journal_errors.labels("durable_timeout").inc()
        log.error("usage_journal_sync_late", seq=target, durable=self._durable)
        return False

    def _check_late(self, loop: asyncio.AbstractEventLoop) -> None:
        """Answers False to the waits past their deadline; runs while any wait is pending. The waits
        are in the order they began, all with the same bound, so the late ones are at the front."""
        self._late_timer = None
        now, late = loop.time(), self._late
        while late and (late[0][1].done() or late[0][0] <= now):
            future = late.popleft()[1]
            if not future.done():
                future.set_result(False)
        if late:
            self._late_timer = loop.call_later(_late_check_seconds(), self._check_late, loop)

    def commit(self, seq: int) -> None:
        """Rows up to `seq` are in Postgres: segments holding only such rows can be deleted."""
        with self._cond:
            if seq > self._committed:
                self._committed = seq
                self._cond.notify()

    async def handoff(self) -> int:
        """Gives up this process's claim on every sealed segment (its rows then replay from disk like a
        dead process's); returns the last seq handed off, 0 if none. Bounds memory in a long outage."""
        return await self._call(self._handoff)

    async def close(self) -> None:
        """Syncs what is pending, deletes what Postgres holds, unlocks the rest for a later replay."""
        if self._thread is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        self._wake_waiters()

    async def _call(self, run: Callable[[], int]) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        with self._cond:
            if self._thread is None or self._closing:
                return 0
            self._calls.append(_Call(run, future, loop))
            self._cond.notify()
        return await future

    def _wake_waiters(self) -> None:
        durable, waiters = self._durable, self._waiters
        while waiters and (waiters[0][0] <= durable or self._thread is None):
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(True)

    # ---- the journal thread ---------------------------------------------------------------------
    def _run(self) -> None:
        backoff, failures = 0.0, 0
        while True:
            with self._cond:
                if not (self._pending or self._calls or self._closing):
                    self._cond.wait(self._idle_seconds)
                data, self._pending = self._pending, []
                last, calls, self._calls = self._appended, self._calls, []
                closing = self._closing
            if data:
                try:
                    self._write(b"".join(data), last)
                    backoff, failures = 0.0, 0
                except Exception as exc:  # noqa: BLE001 - the journal thread must outlive any failure
                    failures += 1
                    if not (closing and failures >= 5):
                        self._failed(exc, data)
                        backoff = min(max(backoff * 2, 0.05), 2.0)
                        time.sleep(backoff)
                    else:
                        log.error("usage_journal_rows_not_written", rows=len(data), error=type(exc).__name__)
            for call in calls:
                self._answer(call)
            try:
                if data or calls:
                    self._reap()
                else:
                    self._idle()
            except Exception as exc:  # noqa: BLE001 - cleanup is retried on the next round
                log.warning("usage_journal_cleanup_failed", error=type(exc).__name__)
            if closing:
                with self._cond:
                    if self._pending or self._calls:
                        continue
                self._shut()
                return

    def _write(self, data: bytes, last: int) -> None:
        segment = self._active
        if segment is None:
            segment = self._active = self._create(last - data.count(b"\n") + 1)
        view = memoryview(data)
        while view:
            view = view[os.write(segment.fd, view):]
        if self._syncer is None:
            os.fdatasync(segment.fd)
            self._synced = last
            self.syncs += 1
        else:
            self._syncer.add(os.dup(segment.fd), last)
        segment.size += len(data)
        segment.last_seq = last
        self._last_write = time.monotonic()
        self._written = last
        if self._loop is not None and self._waiters:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(self._wake_waiters)
        if segment.size >= self._segment_bytes:
            self._sealed.append(segment)
            self._active = None

    def _create(self, first_seq: int) -> _Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        temporary = self.directory / f"{name}.new"
        fd = os.open(temporary, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = self.directory / f"{name}{SUFFIX}"
            os.rename(temporary, path)
            _sync_directory(self.directory)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        return _Segment(path, fd, time.monotonic(), first_seq, first_seq - 1)

    def _reap(self) -> None:
        """Deletes segments whose every row is in Postgres."""
        committed = self._committed
        while self._sealed and self._sealed[0].last_seq <= committed:
            _remove(self._sealed.popleft())

    def _idle(self) -> None:
        """Nothing written for a while: a fully committed active segment goes too (not sooner, so
        steady traffic does not pay for a new file after every batch)."""
        self._reap()
        active = self._active
        if (active is not None and active.last_seq <= self._committed and self._written == self._appended
                and time.monotonic() - self._last_write >= self._idle_seconds):
            self._active = None
            _remove(active)

    def _handoff(self) -> int:
        if self._active is not None:
            self._sealed.append(self._active)
            self._active = None
        last = 0
        while self._sealed:
            segment = self._sealed.popleft()
            last = max(last, segment.last_seq)
            os.close(segment.fd)  # unlocked: a replayer may claim it from here on
        return last

    def _shut(self) -> None:
        self._reap()
        if self._active is not None:
            self._sealed.append(self._active)
            self._active = None
        committed = self._committed
        for segment in self._sealed:
            if segment.last_seq <= committed:
                _remove(segment)
            else:
                os.close(segment.fd)
        self._sealed.clear()
        if self._syncer is not None:
            self._syncer.close()
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake_waiters)

    def _failed(self, exc: Exception, data: list[bytes]) -> None:
        """Keeps the rows for the next try, in a fresh segment: the one that failed may hold a torn
        line (skipped on replay) and stays locked until Postgres has every row it might hold."""
        self.errors += 1
        if self._metrics is not None:
            self._metrics.usage_journal_errors.labels("write").inc()
        log.error("usage_journal_write_failed", error=type(exc).__name__, detail=str(exc)[:200])
        if self._active is not None:
            self._active.last_seq = self._appended  # whatever it may hold, deleted only once committed
            self._sealed.append(self._active)
            self._active = None
        with self._cond:
            self._pending[:0] = data

    @staticmethod
    def _answer(call: _Call) -> None:
        try:
            result: int | BaseException = call.run()
        except Exception as exc:  # noqa: BLE001 - handed to the caller on its loop
            result = exc

        def settle() -> None:
            if call.future.done():
                return
            if isinstance(result, BaseException):
                call.future.set_exception(result)
            else:
                call.future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            call.loop.call_soon_threadsafe(settle)


    def _on_synced(self, seq: int) -> None:
        self._synced = max(self._synced, seq)
        self.syncs += 1


def _remove(segment: _Segment) -> None:
    # Unlinked while still locked, so no replayer can claim a file whose rows are already stored.
    segment.path.unlink(missing_ok=True)
    os.close(segment.fd)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
