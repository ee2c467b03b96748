"""The real `switchyard` command in a child process: run once, or the demo kept running."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Variables a developer's shell may carry that would point the command somewhere else.
_SCRUBBED = ("DATABASE_URL", "SWITCHYARD_ADMIN_TOKEN", "SWITCHYARD_CATALOG", "SWITCHYARD_CATALOG_OVERRIDES",
             "PROMETHEUS_MULTIPROC_DIR", "USAGE_SPILL_PATH")


def process_env(data_root: Path, **extra: str) -> dict[str, str]:
    """The README's default set-up: no DATABASE_URL, the data root given, this checkout's code."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(SWITCHYARD_DATA_DIR=str(data_root), PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", **extra)
    return env


def command(*args: str) -> list[str]:
    # `python -m service.cli` runs this checkout's code; the venv's `switchyard` script may not.
    return [sys.executable, "-m", "service.cli", *args]


def run_cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Demo:
    """`switchyard demo` running in the background, with what it printed."""

    process: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env: dict[str, str], cwd: Path, timeout: float = 120) -> Demo:
        port = free_port()
        process = subprocess.Popen(command("demo", "--port", str(port)), env=env, cwd=cwd, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        demo = cls(process, port)
        demo._read_until("Press Ctrl+C", timeout)
        # Keep draining what it prints, so a full pipe never stalls it.
        threading.Thread(target=demo._drain, daemon=True).start()
        demo._wait_for_http(timeout)
        return demo

    def _drain(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                self.output.append(line.rstrip("\n"))
        except ValueError:
            pass  # closed by stop()

    def _read_until(self, marker: str, timeout: float) -> None:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=1):
                line = self.process.stdout.readline()
                if not line:
                    break
                self.output.append(line.rstrip("\n"))
                if marker in line:
                    return
        self.stop()
        raise AssertionError("the demo did not start:\n" + "\n".join(self.output))

    def _wait_for_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the demo's gateway never listened on {self.port}")

    def printed(self, label: str) -> str:
        """The value the demo printed after `label:`."""
        for line in self.output:
            if (match := re.match(rf"\s*{re.escape(label)}:\s*(\S+)", line)):
                return match.group(1)
        raise AssertionError(f"the demo printed no {label!r}:\n" + "\n".join(self.output))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
