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
