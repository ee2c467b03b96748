"""CPU time and memory of a process tree, read from /proc (psutil is not a dependency)."""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, float]:
    """(parent pid, user+system CPU seconds) from the text of /proc/<pid>/stat."""
    # The command name sits in parentheses and may itself hold spaces or parentheses.
    rest = text[text.rindex(")") + 2:].split()
    # After the name: state(3) ppid(4) ... utime(14) stime(15), numbered as in proc(5).
    ppid = int(rest[1])
    utime, stime = int(rest[11]), int(rest[12])
    return ppid, (utime + stime) / _TICKS


def parse_status_kib(text: str, name: str) -> int:
    """A `Name:   123 kB` field of /proc/<pid>/status, in KiB (0 when absent, e.g. a zombie)."""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def descendants(root: int) -> list[int]:
    """root and every process below it, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text is None:
            continue
        ppid, _ = parse_stat(text)
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        text = _read(PROC / str(pid) / "stat")
        if text is not None:
            total += parse_stat(text)[1]
    return total


def rss_kib(pids: list[int]) -> dict[int, tuple[int, int]]:
    """pid -> (current RSS, peak RSS) in KiB."""
    out = {}
    for pid in pids:
        text = _read(PROC / str(pid) / "status")
        if text is not None:
            out[pid] = (parse_status_kib(text, "VmRSS"), parse_status_kib(text, "VmHWM"))
    return out


def pss_kib(pids: list[int]) -> int:
    """Summed proportional set size: pages shared between the processes (the workers fork from a
    master that has loaded the app) counted once in all, where summed RSS counts them in each."""
    total = 0
    for pid in pids:
        text = _read(PROC / str(pid) / "smaps_rollup")
        if text is not None:
            total += parse_status_kib(text, "Pss")
    return total


@dataclass
class Sample:
    t: float
    rss_kib: int
    pss_kib: int = 0


@dataclass
class TreeSampler:
    """Samples the summed RSS of a process tree on a background thread."""

    root: int
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            pids = descendants(self.root)
            usage = rss_kib(pids)
            self.samples.append(Sample(time.monotonic() - start, sum(r for r, _ in usage.values()), pss_kib(pids)))
            self._stop.wait(self.interval)

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.samples

    @property
    def peak_kib(self) -> int:
        return max((s.rss_kib for s in self.samples), default=0)

    @property
    def peak_pss_kib(self) -> int:
        return max((s.pss_kib for s in self.samples), default=0)


def slope_per_minute(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, in KiB per minute (0 with fewer than two samples)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(s.t for s in samples) / n
    mean_r = sum(s.rss_kib for s in samples) / n
    var = sum((s.t - mean_t) ** 2 for s in samples)
    if var == 0:
        return 0.0
    cov = sum((s.t - mean_t) * (s.rss_kib - mean_r) for s in samples)
    return cov / var * 60.0


def machine_busy_seconds() -> float:
    """CPU seconds every core has spent not idle since boot, from /proc/stat."""
    fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def children_cpu_seconds() -> float:
    """User+system CPU of this process's waited-for children (wrk, once each run ends)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
