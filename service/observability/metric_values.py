"""Metric values for multiprocess mode that are counted in memory and written to the shared files
in batches.

prometheus_client's own multiprocess value calls os.getpid() and packs the new value into the
process's mmap file on every inc() and observe(). A request touches about fifteen values, and a
worker profile under load put that at 7-9% of the worker's Python time. Here an update only adds
to a float under a lock and marks the value dirty; a daemon thread writes the dirty values every
`FLUSH_SECONDS`, and a scrape answered by this process writes its own first. So a scrape through
another process (another worker, or the master's metrics port) sees this worker's counts at most
`FLUSH_SECONDS` late, far below any scrape interval; the files, their names and what the
MultiProcessCollector reads from them are unchanged.
"""

from __future__ import annotations

import atexit
import os
import threading

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

FLUSH_SECONDS = 0.05


class _Shared:
    """One process's files, dirty values and writer thread. Reset in a forked child: the
    parent's files are its own, and the child starts from zero in files named by its pid."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[tuple[str, str], MmapedDict] = {}
        self.all: list[BufferedValue] = []
        self.dirty: list[BufferedValue] = []
        self.pid = os.getpid()
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()

    def file(self, directory: str, prefix: str) -> MmapedDict:
        found = self.files.get((directory, prefix))
        if found is None:
            found = self.files[directory, prefix] = MmapedDict(os.path.join(directory, f"{prefix}_{self.pid}.db"))
        return found

    def mark(self, value: BufferedValue) -> None:
        # Called with the lock held.
        self.dirty.append(value)
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="metrics-writer", daemon=True)
            self.thread.start()

    def flush(self) -> None:
        with self.lock:
            dirty, self.dirty = self.dirty, []
            for value in dirty:
                value.write()

    def _run(self) -> None:
        while not self.stop.wait(FLUSH_SECONDS):
            self.flush()

    def after_fork(self) -> None:
        # The child holds the parent's lock state and thread handle; neither is valid here.
        self.lock = threading.Lock()
        for f in self.files.values():
            f.close()
        self.files.clear()
        self.dirty = []
        self.thread = None
        self.stop = threading.Event()
        self.pid = os.getpid()
        for value in self.all:
            value.reopen()


_shared: _Shared | None = None


def _state() -> _Shared:
    """The process's state, made on first use (nothing runs at import)."""
    global _shared  # noqa: PLW0603 - one per process; a fork resets it in place
    if _shared is None:
        _shared = _Shared()
        os.register_at_fork(after_in_child=_shared.after_fork)
        atexit.register(_shared.flush)
    return _shared


def flush_metric_values() -> None:
    """Write every pending update to this process's files now (a scrape, a graceful stop)."""
    if _shared is not None:
        _shared.flush()


class BufferedValue:
    """prometheus_client's value interface (inc, set, get), buffered as the module says."""

    _multiprocess = True

    def __init__(self, typ: str, metric_name: str, name: str, labelnames: list[str],
                 labelvalues: list[str], help_text: str, multiprocess_mode: str = "",
                 **_kwargs: object) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            raise RuntimeError("buffered metric values need PROMETHEUS_MULTIPROC_DIR")
        self._directory = directory
        self._prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
        self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
        self._dirty = False
        self._shared = shared = _state()
        with shared.lock:
            self._file = shared.file(self._directory, self._prefix)
            self._value: float
            self._timestamp: float
            self._value, self._timestamp = self._file.read_value(self._key)
            shared.all.append(self)

    def reopen(self) -> None:
        self._file = self._shared.file(self._directory, self._prefix)
        self._value, self._timestamp = self._file.read_value(self._key)
        self._dirty = False

    def write(self) -> None:
        # Called with the lock held, by flush.
        self._dirty = False
        self._file.write_value(self._key, self._value, self._timestamp)

    def inc(self, amount: float) -> None:
        shared = self._shared
        with shared.lock:
            self._value += amount
            self._timestamp = 0.0
            if not self._dirty:
                self._dirty = True
                shared.mark(self)

    def set(self, value: float, timestamp: float | None = None) -> None:
        shared = self._shared
        with shared.lock:
            self._value = value
            self._timestamp = timestamp or 0.0
            if not self._dirty:
                self._dirty = True
                shared.mark(self)

    def set_exemplar(self, _exemplar: object) -> None:
        return  # multiprocess mode has no exemplars (as prometheus_client's own value)

    def get(self) -> float:
        with self._shared.lock:
            return self._value

    def get_exemplar(self) -> None:
        return None


def use_buffered_values() -> None:
    """Metrics created from now on in this process count with BufferedValue, when multiprocess mode
    is on (prometheus_client picks its own value class once, at import)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = BufferedValue
