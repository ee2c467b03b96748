"""A stop signal that reaches a server worker while it is still starting is not lost.

Two windows lose one, both seen in CI as a worker that served on after its pod was stopped:
- granian forks its workers with the parent's Python signal handlers and installs its own only
  after our app factory has run; a SIGTERM in between ran the parent's handler on the child's copy
  of its state. `hold_stop_signals` runs right after the fork (and again first thing in the
  factory) and keeps such a signal; `worker_started` sends it again once granian's handlers are in.
- granian runs the worker's uvloop twice: the lifespan's start-up, then serving. uvloop listens for
  signals only while it runs; one that lands in between is set aside and acted on only when the
  next signal arrives. `worker_started` wraps the handlers uvloop installed so that any stop also
  makes the loop look at what it set aside, once it runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from types import FrameType

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_held: list[int] = []

Handler = Callable[[int, FrameType | None], object]


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


def worker_started() -> None:
    """Called from the lifespan's start-up, inside the running loop, after granian's handlers."""
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        current = signal.getsignal(sig)
        if callable(current):
            signal.signal(sig, _nudging(current, loop))
    redeliver_held_stop()


def _nudging(handler: Handler, loop: asyncio.AbstractEventLoop) -> Handler:
    def on_stop(signum: int, frame: FrameType | None) -> None:
        handler(signum, frame)
        with contextlib.suppress(RuntimeError):  # the loop has closed: the process is on its way out
            loop.call_soon_threadsafe(_wake_signal_reader)

    return on_stop


def _wake_signal_reader() -> None:
    """A null byte through the signal wakeup fd: uvloop then acts on every signal it set aside and
    skips the byte (asyncio's loop skips it too). Runs inside the loop, so the fd is the loop's."""
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    if fd != -1:
        with contextlib.suppress(BlockingIOError):  # the pipe is full of signals: it is read anyway
            os.write(fd, b"\0")
