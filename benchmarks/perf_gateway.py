"""The gateway under test as production runs it: `switchyard serve --workers N`, real Postgres, auth, metering."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from benchmarks.perf_procs import descendants
from benchmarks.perf_upstream import free_port

# Settings the test environment (tests.support.gateway_env) shortens and production leaves at
# their defaults; the benchmark measures the defaults.
_TEST_ONLY = ("UPSTREAM_FIRST_BYTE_TIMEOUT", "UPSTREAM_TOTAL_TIMEOUT", "USAGE_FLUSH_SECONDS")
# Variables of the caller's shell that would change the gateway under test.
_INHERITED_OUT = ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "XPAY_API_KEY", "ORTHOGONAL_API_KEY",
                  "SWITCHYARD_CATALOG", "SWITCHYARD_CATALOG_OVERRIDES")
FAKE_BASETEN_KEY = "bench-baseten-key"


def gateway_environment(upstream_url: str | None, database_url: str, data_dir: Path, log_level: str,
                        *, upstreams: SimpleNamespace | None = None, **extra: str) -> dict[str, str]:
    """The gateway's environment: Baseten at `upstream_url` (nginx), or every front end as
    `upstreams` names them (the stand-ins: api_keys, baseten_url, xpay_url, orthogonal_url)."""
    from tests.support import gateway_env

    upstream = upstreams or SimpleNamespace(api_keys={"baseten": FAKE_BASETEN_KEY}, baseten_url=upstream_url + "/v1",
                                            xpay_url=None, orthogonal_url=None)
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_OUT and not k.startswith("SWITCHYARD_")}
    env.update(gateway_env(upstream, database_url, data_dir, LOG_LEVEL=log_level, **extra))
    for name in _TEST_ONLY:
        env.pop(name, None)
    return env


def _command(host: str, port: int, workers: int) -> list[str]:
    script = Path(sys.executable).parent / "switchyard"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "service"]
    return head + ["serve", "--host", host, "--port", str(port), "--workers", str(workers)]


class Gateway:
    """One `switchyard serve` process tree; its logs go to a file, as a log shipper would take them."""

    def __init__(self, run_dir: Path, name: str, env: dict[str, str], workers: int,
                 source: Path | None = None) -> None:
        self.run_dir = run_dir
        # Another checkout of the code (--against): its `service` package is imported instead.
        self.source = source
        self.name = name
        self.env = env
        self.workers = workers
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.stopped = False
        self.log_path = run_dir / f"gateway-{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return descendants(self.process.pid)

    def command(self, host: str, port: int) -> list[str]:
        if self.source is not None:
            return [sys.executable, "-m", "service", "serve", "--host", host, "--port", str(port),
                    "--workers", str(self.workers)]
        return _command(host, port, self.workers)

    def start(self, timeout: float = 60.0) -> Gateway:
        self.port = free_port()
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                self.command("127.0.0.1", self.port),
                env=self.env if self.source is None else {**self.env, "PYTHONPATH": str(self.source)},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                cwd=str(self.source or Path(__file__).resolve().parent.parent),
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        # Every worker must be up: connections spread across them, so ask on fresh connections
        # until several answers in a row say ready and every worker process exists.
        deadline = time.monotonic() + timeout
        streak = 0
        while streak < 20 or len(self.pids) < self.workers + 1:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited at start ({self.process.returncode}): {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not ready within {timeout} s: {self.tail()}")
            status, _, _ = request(self.url, "GET", "/readyz", timeout=2)
            if status == 200:
                streak += 1
            else:
                streak = 0
                time.sleep(0.1)

    def tail(self) -> str:
        if self.log_path.exists():
            return self.log_path.read_text("utf-8", "replace")[-3000:]
        return "(no output)"

    def stop(self, timeout: float = 60.0) -> int | None:
        """Graceful stop (the usage writer drains on shutdown); killed if it overstays."""
        process = self.process
        if process is None or self.stopped:
            return process.returncode if process else None
        self.stopped = True
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # The group is the session we gave the master: workers left behind by a master that
        # overstayed or died would hold the port and keep writing rows.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if process.poll() is None:
            process.wait(10)
        return process.returncode


def request(base_url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; status 0 when nothing answered."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except OSError:
        return 0, {}, b""
    finally:
        conn.close()


def preflight(gateway_url: str, key: str, body: bytes, stream: bool) -> None:
    """One request through the gateway, checked, before anything is measured."""
    status, headers, content = request(gateway_url, "POST", "/v1/chat/completions", body,
                                       {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"preflight through the gateway answered {status}: {content[:500]!r}")
    if stream:
        if not headers.get("content-type", "").startswith("text/event-stream") or \
                not content.endswith(b"data: [DONE]\n\n"):
            raise RuntimeError(f"preflight stream is not a complete SSE stream: {content[-300:]!r}")
        events = [line for line in content.split(b"\n") if line.startswith(b"data: {")]
        usage = json.loads(events[-1][6:]).get("usage") if events else None
        if not isinstance(usage, dict) or "cost" not in usage:
            raise RuntimeError("preflight stream carries no final usage chunk with a cost")
    else:
        answer = json.loads(content)
        if not answer.get("choices") or "cost" not in (answer.get("usage") or {}):
            raise RuntimeError(f"preflight answer lacks choices or usage.cost: {content[:500]!r}")


def scrape_counter(gateway_url: str, name: str) -> float:
    """The sum over every label set of one counter on /metrics (all workers aggregated)."""
    status, _, content = request(gateway_url, "GET", "/metrics")
    if status != 200:
        return float("nan")
    total = 0.0
    for line in content.decode("utf-8", "replace").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Database:
    """A fresh, migrated database on the machine's Postgres (or an embedded one), with one tenant key."""

    admin: object
    url: str
    key: str

    @classmethod
    def create(cls) -> Database:
        from tests.support import Postgres, create_tenant_with_key

        pg = Postgres()
        pg.start()
        try:
            url = pg.create_database(migrate=True)
            tenant = create_tenant_with_key(url, "bench")
        except BaseException:
            pg.stop()
            raise
        return cls(pg, url, tenant.key)

    def usage_rows(self, by: str = "status") -> dict[str, int]:
        """Ledger rows by status (or by front end)."""
        column = {"status": "status", "front_end": "front_end"}[by]

        async def count() -> dict[str, int]:
            import asyncpg

            conn = await asyncpg.connect(self.url)
            try:
                rows = await conn.fetch(f"SELECT {column} AS k, count(*) AS n FROM usage_events GROUP BY {column}")
            finally:
                await conn.close()
            return {r["k"]: r["n"] for r in rows}

        return asyncio.run(count())

    def drop(self) -> None:
        try:
            self.admin.drop_database(self.url)
        finally:
            self.admin.stop()


def spilled_rows(data_dir: Path) -> int:
    """Rows the gateway left in its usage journal (not in Postgres when it stopped)."""
    total = 0
    for path in (data_dir / "journal").glob("*.jsonl"):
        with path.open("rb") as f:
            total += sum(1 for _ in f)
    return total
