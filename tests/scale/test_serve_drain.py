"""A worker that will not stop is killed once the drain bound has passed: the server's stop is
bounded even when granian's worker hangs in its own stop handling."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.scale.serve_process import ServeProcess


def test_a_worker_that_hangs_while_stopping_is_killed_after_the_drain_bound(standins, database_url):
    server = ServeProcess(standins, database_url, workers=1, SWITCHYARD_DRAIN_SECONDS="2").start()
    try:
        workers = psutil.Process(server.process.pid).children()
        assert len(workers) == 1
        worker = workers[0]
        os.kill(worker.pid, signal.SIGSTOP)  # it cannot run its stop handling, as if it hung in it
        began = time.monotonic()
        server.terminate()
        server.wait(30)
        took = time.monotonic() - began
        assert 1.5 <= took < 15, took  # waited its drain bound, then killed it
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    finally:
        server.stop()


def test_a_drain_bound_that_is_not_a_number_stops_serve_at_once(standins, database_url):
    server = ServeProcess(standins, database_url, workers=1, SWITCHYARD_DRAIN_SECONDS="soon")
    try:
        with pytest.raises(RuntimeError, match="SWITCHYARD_DRAIN_SECONDS must be a whole number"):
            server.start(timeout=30)
    finally:
        server.stop()
