"""A stop signal that reaches a server worker while it is still loading is not lost.

granian forks its workers with the parent's Python signal handlers and installs its own only
after our app factory has run. A SIGTERM landing in that window (a rollout that stops a pod
while a worker is still starting) ran the parent's handler on the child's copy of its state,
and the worker then served forever. The factory calls `hold_stop_signals` first; the lifespan
calls `redeliver_held_stop` once granian's handlers are in place, which makes it stop as asked.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_held: list[int] = []


def _hold(signum: int, _frame: FrameType | None) -> None:
    _held.append(signum)


def hold_stop_signals() -> None:
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _hold)


def redeliver_held_stop() -> bool:
    """Send a held stop signal to this process again; True when there was one."""
    if not _held:
        return False
    os.kill(os.getpid(), _held[0])
    _held.clear()
    return True
