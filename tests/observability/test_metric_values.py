"""Buffered multiprocess metric values: exact on a scrape by the same process, at most a flush late
in the shared files, one file per process after a fork, and no update lost between threads."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.mmap_dict import MmapedDict

from service.observability.metric_values import FLUSH_SECONDS, BufferedValue, flush_metric_values
from service.observability.metrics import Metrics
from tests.observability.prometheus_helpers import total


@pytest.fixture
def multiproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # restored after the test
    return tmp_path


def _collected(path: Path) -> str:
    """What another process (the master, another worker) reads: the files alone, no flush."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))
    return generate_latest(registry).decode()


def _in_file(path: Path, name: str) -> float:
    found = 0.0
    for file in path.glob(f"counter_{os.getpid()}.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(file)):
            if f'"{name}"' in key:
                found += value
    return found


def test_multiprocess_mode_counts_with_buffered_values(multiproc: Path) -> None:
    m = Metrics()
    assert values.ValueClass is BufferedValue
    m.requests.labels("m", "baseten", "2xx", "false").inc()
    assert isinstance(m.requests.labels("m", "baseten", "2xx", "false")._value, BufferedValue)


def test_a_scrape_by_the_same_process_is_exact_at_once(multiproc: Path) -> None:
    m = Metrics()
    for _ in range(7):
        m.requests.labels("m", "baseten", "2xx", "false").inc()
        m.request_duration.labels("m", "baseten", "false").observe(0.02)
    text = m.exposition().decode()
    assert total(text, "switchyard_requests_total") == 7
    assert total(text, "switchyard_request_duration_seconds_count") == 7
    assert total(text, "switchyard_request_duration_seconds_sum") == pytest.approx(0.14)


def test_other_processes_see_the_counts_within_a_few_flushes(multiproc: Path) -> None:
    m = Metrics()
    m.tokens.labels("m", "baseten", "prompt").inc(120)
    deadline = time.monotonic() + 2
    while _in_file(multiproc, "switchyard_tokens_total") != 120 and time.monotonic() < deadline:
        time.sleep(FLUSH_SECONDS / 5)
    waited = 2 - (deadline - time.monotonic())
    assert _in_file(multiproc, "switchyard_tokens_total") == 120
    assert waited < 1.0  # the writer thread runs every FLUSH_SECONDS
    assert total(_collected(multiproc), "switchyard_tokens_total") == 120


def test_gauges_keep_their_multiprocess_modes(multiproc: Path) -> None:
    m = Metrics()
    m.route_inflight.labels("baseten:m").inc()
    m.route_inflight.labels("baseten:m").inc()
    m.route_inflight.labels("baseten:m").dec()
    m.budget_remaining.labels("t").set(5.0)
    m.budget_remaining.labels("t").set(3.5)
    flush_metric_values()
    text = _collected(multiproc)
    assert total(text, "switchyard_route_inflight") == 1
    assert total(text, "switchyard_budget_remaining_usd") == 3.5
    assert list(multiproc.glob(f"gauge_livesum_{os.getpid()}.db"))
    assert list(multiproc.glob(f"gauge_mostrecent_{os.getpid()}.db"))


def test_no_update_is_lost_between_threads(multiproc: Path) -> None:
    m = Metrics()
    child = m.tokens.labels("m", "baseten", "completion")

    def add() -> None:
        for _ in range(5_000):
            child.inc()

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert total(m.exposition().decode(), "switchyard_tokens_total") == 20_000


def _child_counts(done: multiprocessing.synchronize.Event) -> None:
    # The parent's metric objects, used in a forked child, as granian's workers would if the app
    # were built before the fork: they must write to a file of the child's own pid.
    child = _PARENT_METRICS[0].requests.labels("m", "baseten", "2xx", "false")
    child.inc(5)
    flush_metric_values()
    done.set()


_PARENT_METRICS: list[Metrics] = []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_writes_its_own_file_from_zero(multiproc: Path) -> None:
    m = Metrics()
    _PARENT_METRICS[:] = [m]
    m.requests.labels("m", "baseten", "2xx", "false").inc(3)
    flush_metric_values()
    ctx = multiprocessing.get_context("fork")
    done = ctx.Event()
    proc = ctx.Process(target=_child_counts, args=(done,))
    proc.start()
    proc.join(20)
    assert proc.exitcode == 0 and done.is_set()
    files = sorted(p.name for p in multiproc.glob("counter_*.db"))
    assert files == sorted([f"counter_{os.getpid()}.db", f"counter_{proc.pid}.db"])
    assert total(_collected(multiproc), "switchyard_requests_total") == 8  # 3 here + 5 there, not 3 + 8
    # The parent goes on counting in its own file.
    m.requests.labels("m", "baseten", "2xx", "false").inc()
    assert total(m.exposition().decode(), "switchyard_requests_total") == 9


def test_without_multiprocess_mode_prometheus_values_are_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(values, "ValueClass", values.MutexValue)
    m = Metrics()
    assert values.ValueClass is values.MutexValue
    m.requests.labels("m", "baseten", "2xx", "false").inc()
    assert total(m.exposition().decode(), "switchyard_requests_total") == 1
