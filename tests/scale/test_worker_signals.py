"""Signals held while a worker loads are delivered again once its real handlers are in place."""

from __future__ import annotations

import os
import signal

from service import worker_signals


def test_a_held_stop_is_delivered_to_the_next_handler():
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    seen: list[int] = []
    try:
        worker_signals.hold_stop_signals()
        os.kill(os.getpid(), signal.SIGTERM)  # lands while "loading": held, not acted on
        signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
        assert seen == []
        assert worker_signals.redeliver_held_stop() is True
        assert seen == [signal.SIGTERM]
        assert worker_signals.redeliver_held_stop() is False  # delivered once
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_stop_between_two_runs_of_the_loop_reaches_the_servers_handler():
    """granian runs its worker's loop twice (the lifespan's start-up, then serving); uvloop sets a
    stop that lands between the two aside and acts on it only with the next signal, so the worker
    served on after its stop (seen in CI). The guard installed at start-up makes it act at once."""
    import asyncio

    import uvloop

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    loop = uvloop.new_event_loop()
    seen: list[str] = []
    try:
        loop.add_signal_handler(signal.SIGTERM, seen.append, "stop")  # as granian's worker does

        async def start_up() -> None:
            worker_signals.worker_started()

        loop.run_until_complete(start_up())
        os.kill(os.getpid(), signal.SIGTERM)  # the loop is not running: between start-up and serving

        async def serve() -> None:
            for _ in range(100):
                if seen:
                    return
                await asyncio.sleep(0.01)

        loop.run_until_complete(serve())
        assert seen == ["stop"]
    finally:
        loop.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_worker_forked_by_serve_holds_stop_signals_from_the_fork(tmp_path):
    """Between granian's fork and our factory a worker ran the master's handler; `serve` now has
    every forked child hold stop signals from its first instruction. In a subprocess: the fork
    hook, once registered, stays for the whole process."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import os, signal, sys
        import granian
        from service import cli, worker_signals

        class FakeGranian:
            def __init__(self, *args, **kwargs):
                pass

            def serve(self):
                pid = os.fork()
                if pid == 0:  # the worker, before granian or the factory have run anything
                    held = signal.getsignal(signal.SIGTERM) is worker_signals._hold
                    os.kill(os.getpid(), signal.SIGTERM)  # kept, not acted on
                    os._exit(0 if held and worker_signals._held == [signal.SIGTERM] else 3)
                _, status = os.waitpid(pid, 0)
                sys.exit(os.waitstatus_to_exitcode(status))

        granian.Granian = FakeGranian
        cli.serve_forever("127.0.0.1", 0, workers=1)
    """)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
