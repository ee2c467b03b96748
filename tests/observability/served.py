"""`switchyard serve` as a real subprocess (granian workers), with its output kept in files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on right now; the OS picks it, so tests never share one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def switchyard_command() -> list[str]:
    """The installed console script, as an operator runs it; `python -m service` otherwise."""
    script = shutil.which("switchyard", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "service"]


class ServedGateway:
    """One `switchyard serve --workers N` process group; stop() sends SIGTERM and waits."""

    def __init__(self, env: dict[str, str], workers: int, out_dir: Path) -> None:
        self.env = env
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = out_dir / "gateway.stdout"
        self.stderr_path = out_dir / "gateway.stderr"
        self.process: subprocess.Popen | None = None
        self.returncode: int | None = None

    def start(self, timeout: float = 30.0) -> ServedGateway:
        inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        # Never the runner's own metrics directory: serve wipes the one it is given.
        env = {**inherited, **self.env, "PYTHONUNBUFFERED": "1"}
        command = [*switchyard_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(self.workers)]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            # Its own session, so a hung server can be ended as one group without touching anything else.
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"switchyard serve exited with {code}:\n{self.stderr()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"switchyard serve not ready within {timeout}s:\n{self.stderr()}")
            time.sleep(0.1)

    def wait_for_workers(self, timeout: float = 30.0) -> None:
        """Until every worker has logged its start (needs LOG_LEVEL=INFO): /readyz answers as soon
        as the first one is up, and until the others are, that one takes every connection."""
        deadline = time.monotonic() + timeout
        while self._started_workers() < self.workers:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"switchyard serve exited:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every worker started within {timeout}s:\n{self.stdout()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM to the server and its exit code; a server that ignores it is killed and reported."""
        if self.process is None:
            return self.returncode if self.returncode is not None else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        pid, self.process = self.process.pid, None
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            raise RuntimeError("worker processes outlived `switchyard serve` after SIGTERM")
        return self.returncode

    def kill(self) -> None:
        """The whole group: workers left behind by a dying parent would hold the port."""
        if self.process is None:
            return
        if _group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.returncode = self.process.wait(10)
        self.process = None

    def _started_workers(self) -> int:
        count = 0
        for line in self.stdout().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):  # a line cut short by the process's end
                    count += json.loads(line).get("event") == "started"
        return count

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
