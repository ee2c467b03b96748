"""kill -9 under load: of one worker (it is replaced, the server never stops answering) and of the whole
server (restarted, it replays what the dead processes journaled). Either way, every request answered
200 has its usage row."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.scale.serve_process import ServeProcess
from tests.support import acreate_tenant_with_key, fetch

PINNED = {"provider": {"only": ["baseten"]}}
# Rows wait a whole second in memory before Postgres: without the journal, a kill loses them.
SLOW_FLUSH = {"USAGE_FLUSH_SECONDS": "1"}


@dataclass
class Load:
    answered: list[str] = field(default_factory=list)  # request ids answered 200 in full
    failures: list[tuple[float, str]] = field(default_factory=list)  # (when, what)
    stop: bool = False


async def _one(client: httpx.AsyncClient, key: str, i: int, load: Load) -> None:
    body = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": f"hi {i}"}], **PINNED}
    headers = {"Authorization": f"Bearer {key}"}
    try:
        if i % 2:
            body["stream"] = True
            async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
                data = await r.aread()
                if r.status_code == 200 and data.endswith(b"data: [DONE]\n\n"):
                    load.answered.append(r.headers["x-request-id"])
                else:
                    load.failures.append((time.monotonic(), f"{r.status_code} {data[-80:]!r}"))
        else:
            r = await client.post("/v1/chat/completions", json=body, headers=headers)
            if r.status_code == 200:
                load.answered.append(r.headers["x-request-id"])
            else:
                load.failures.append((time.monotonic(), f"{r.status_code} {r.text[:80]}"))
    except httpx.HTTPError as exc:
        load.failures.append((time.monotonic(), type(exc).__name__))


async def _drive(url: str, key: str, load: Load, loops: int = 6) -> None:
    async def loop(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            i = n
            while not load.stop:
                await _one(client, key, i, load)
                i += loops
                await asyncio.sleep(0.005)

    await asyncio.gather(*(loop(n) for n in range(loops)))


async def _missing_rows(database_url: str, tenant_id, answered: list[str], timeout: float = 20) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await fetch(database_url, "SELECT request_id FROM usage_events WHERE tenant_id = $1 AND status = 'ok'",
                           tenant_id)
        missing = set(answered) - {r["request_id"] for r in rows}
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_a_killed_worker_is_replaced_and_no_answered_request_is_unbilled(standins, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    server = ServeProcess(standins, database_url, workers=2, **SLOW_FLUSH).start()
    try:
        load = Load()
        driver = asyncio.create_task(_drive(server.url, tenant.key, load))
        await asyncio.sleep(1.5)
        workers = server.workers_pids()
        assert len(workers) == 2
        before = len(load.answered)
        killed_at = time.monotonic()
        os.kill(workers[0], signal.SIGKILL)
        # The server keeps answering while the worker is replaced.
        deadline = time.monotonic() + 45  # granian waits respawn_interval (3.5 s), then the worker loads
        while time.monotonic() < deadline:
            alive = server.workers_pids()
            if len(alive) == 2 and workers[0] not in alive:
                break
            await asyncio.sleep(0.1)
        replaced = server.workers_pids()
        await asyncio.sleep(1.0)
        load.stop = True
        await driver
        assert server.process.poll() is None, server.log()[-3000:]
        assert len(replaced) == 2, replaced
        assert workers[0] not in replaced
        assert len(load.answered) > before + 20  # answered all along, not only before the kill
        # Only what the dead worker had in flight failed, right at the kill; never a refused connection.
        assert all(when - killed_at < 1.0 for when, _ in load.failures), load.failures
        assert len(load.failures) <= 6, load.failures
        assert not [what for _, what in load.failures if what == "ConnectError"]
        assert await _missing_rows(database_url, tenant.tenant_id, load.answered) == set()
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("journal", ["write", "sync"])
async def test_kill_9_of_the_whole_server_loses_no_answered_request(standins, database_url, journal):
    tenant = await acreate_tenant_with_key(database_url)
    server = ServeProcess(standins, database_url, workers=2, SWITCHYARD_USAGE_JOURNAL=journal, **SLOW_FLUSH).start()
    load = Load()
    try:
        driver = asyncio.create_task(_drive(server.url, tenant.key, load))
        await asyncio.sleep(2.0)
        server.kill_all()  # master and workers, rows of the last second still in memory
        load.stop = True
        await driver
    finally:
        server.stop()
    assert len(load.answered) > 20
    restarted = ServeProcess(standins, database_url, workers=2, data_dir=server.data_dir).start()
    try:
        assert await _missing_rows(database_url, tenant.tenant_id, load.answered) == set()
        rows = await fetch(database_url, "SELECT request_id, attempt FROM usage_events WHERE tenant_id = $1",
                           tenant.tenant_id)
        keys = [(r["request_id"], r["attempt"]) for r in rows]
        assert len(keys) == len(set(keys))  # replayed rows are stored once
    finally:
        assert restarted.stop() == 0, restarted.log()[-3000:]
