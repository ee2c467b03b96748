"""`switchyard serve` as production runs it, in a subprocess a test can start, probe and stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support import gateway_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    def __init__(self, standins, database_url: str, *, workers: int = 2, metrics_dir: bool = True,
                 data_dir: Path | None = None, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A given data_dir: a restart of an earlier server, finding what it left (its usage journal).
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="switchyard-serve-"))
        self.log_path = self.data_dir / "server.log"
        self.env = {**os.environ, **gateway_env(standins, database_url, self.data_dir, **env)}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if metrics_dir:  # else `serve` must choose one itself, as it does in production
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(self.data_dir / "prometheus")
        self.workers = workers
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> ServeProcess:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(self.workers)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
            # Its own process group, so stopping it can never leave granian's workers behind.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited early: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"serve not ready in {timeout}s: {self.log_path.read_text()[-2000:]}")

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.terminate()
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is still there
        return code if code is not None else self.process.wait(10)

    def workers_pids(self) -> list[int]:
        """The worker processes granian's master has forked (its direct children)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(c) for c in children]

    def kill_all(self) -> None:
        """kill -9 of the whole server, master and workers at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
