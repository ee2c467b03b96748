"""The usage journal and the writer over it: rows on disk before an answer, replayed by whoever is
alive, and a writer that no exception ends."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from pathlib import Path

import orjson
import pytest

from service.db.pool import create_pool
from service.metering.events import UsageEvent
from service.metering.journal import Journal, encode
from service.metering.journal_replay import claim, orphans
from service.metering.ledger import UsageWriter
from service.observability.metrics import Metrics
from tests.metering.journal_rows import event
from tests.support import fetch


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def test_a_journal_line_reads_back_as_the_same_row():
    e = event()
    assert UsageEvent.from_json(orjson.loads(encode(e))) == e
    bare = event(key_id=None, first_token_at=None, direct_billed_usd=None, tags=(), metadata=None, end_user=None)
    assert UsageEvent.from_json(orjson.loads(encode(bare))) == bare


async def test_durable_means_on_disk_and_one_sync_covers_many_rows(tmp_path):
    journal = Journal(tmp_path / "journal")
    journal.start()
    try:
        rows = [event() for _ in range(200)]
        for e in rows:
            journal.append(e)
        assert await journal.durable() is True
        # Group commit: 200 rows appended together take a handful of syncs, not 200.
        assert journal.syncs < 20
        [segment] = segment_files(tmp_path / "journal")
        lines = segment.read_bytes().splitlines()
        assert [UsageEvent.from_json(orjson.loads(line)) for line in lines] == rows
        # Held by this live process: nobody may replay it, not even another descriptor of ours.
        assert claim(segment) is None
    finally:
        await journal.close()


async def test_committed_segments_are_deleted_and_the_rest_is_left_for_replay(tmp_path):
    directory = tmp_path / "journal"
    journal = Journal(directory, segment_bytes=2_000)  # a few rows a segment
    journal.start()
    seqs = [journal.append(event()) for _ in range(3)]
    await journal.durable()
    later = [journal.append(event()) for _ in range(3)]
    await journal.durable()
    assert len(segment_files(directory)) >= 2
    journal.commit(seqs[-1])
    await journal.close()
    left = segment_files(directory)
    replayable = [c for c in (claim(p) for p in left) if c is not None]
    read = [e for c in replayable for e in c.read(100)]
    assert len(read) >= len(later)  # everything not committed is still there, and claimable
    assert len(read) < len(seqs) + len(later)  # the committed segment went


async def test_a_torn_last_line_is_skipped_counted_and_the_rest_replayed(tmp_path):
    directory = tmp_path / "journal"
    directory.mkdir()
    rows = [event() for _ in range(3)]
    data = b"".join(encode(e) for e in rows)
    (directory / "dead-worker.jsonl").write_bytes(data + encode(event())[:57])  # kill -9 mid-write
    metrics = Metrics()
    [path] = orphans(directory)
    claimed = claim(path, metrics)
    assert claimed is not None
    assert claimed.read(2) == rows[:2]  # a batch at a time
    assert claimed.read(100) == rows[2:]
    assert claimed.torn == 1
    assert metrics.usage_journal_errors.labels("torn_line")._value.get() == 1
    claimed.finish()
    assert orphans(directory) == []


async def test_a_dead_process_journal_is_replayed_into_postgres_once(tmp_path, database_url):
    tenant = uuid.uuid4()
    directory = tmp_path / "journal"
    directory.mkdir()
    rows = [event(tenant) for _ in range(2_500)]  # more than one replay batch
    (directory / "12345-dead.jsonl").write_bytes(b"".join(encode(e) for e in rows[:1_500]))
    (directory / "12346-dead.jsonl").write_bytes(b"".join(encode(e) for e in rows[1_000:]))  # overlapping
    pool = await create_pool(database_url)
    writer = UsageWriter(lambda: pool, directory, replay_seconds=0.1)
    writer.start()
    try:
        for _ in range(100):
            if not segment_files(directory):
                break
            await asyncio.sleep(0.05)
        assert segment_files(directory) == []
        stored = await fetch(database_url, "SELECT count(*) AS n FROM usage_events WHERE tenant_id = $1", tenant)
        assert stored[0]["n"] == 2_500
    finally:
        await writer.stop()
        await pool.close()


class _Flaky:
    """A pool getter that fails like a bug would (not a database error) a few times."""

    def __init__(self, pool: object, failures: int) -> None:
        self.pool, self.failures = pool, failures

    def __call__(self) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("a bug in the writer's path")
        return self.pool


async def test_the_writer_survives_any_exception_and_keeps_its_batch(tmp_path, database_url):
    tenant = uuid.uuid4()
    metrics = Metrics()
    pool = await create_pool(database_url)
    flaky = _Flaky(pool, failures=3)
    writer = UsageWriter(flaky, tmp_path / "journal", flush_seconds=0.02, metrics=metrics)  # type: ignore[arg-type]
    writer.start()
    try:
        rows = [event(tenant) for _ in range(20)]
        for e in rows:
            writer.submit(e)
        await writer.durable()
        stored: list = []
        for _ in range(200):
            stored = await fetch(database_url, "SELECT request_id FROM usage_events WHERE tenant_id = $1", tenant)
            if len(stored) == 20:
                break
            await asyncio.sleep(0.05)
        assert sorted(r["request_id"] for r in stored) == sorted(e.request_id for e in rows)
        assert writer.loop_errors >= 1
        assert metrics.usage_writer_errors.labels("usage-writer")._value.get() >= 1
    finally:
        await writer.stop()
        await pool.close()
    assert segment_files(tmp_path / "journal") == []  # all in Postgres: nothing left to replay


async def test_rows_left_at_shutdown_without_a_database_are_in_the_journal(tmp_path):
    directory = tmp_path / "journal"
    writer = UsageWriter(lambda: None, directory, flush_seconds=0.02)
    writer.start()
    rows = [event() for _ in range(5)]
    for e in rows:
        writer.submit(e)
    await writer.stop()
    [path] = segment_files(directory)
    claimed = claim(path)
    assert claimed is not None
    assert claimed.read(100) == rows
    claimed.release()


async def test_a_full_queue_hands_its_rows_to_the_journal_files_instead_of_memory(tmp_path):
    directory = tmp_path / "journal"
    writer = UsageWriter(lambda: None, directory, max_queue=100, flush_seconds=0.02)
    writer.start()
    try:
        for _ in range(250):
            writer.submit(event())
        await writer.durable()
        for _ in range(100):
            if writer.depth <= 100:
                break
            await asyncio.sleep(0.02)
        assert writer.depth <= 100
        handed = [c for c in (claim(p) for p in segment_files(directory)) if c is not None]
        assert sum(len(c.read(1_000)) for c in handed) + writer.depth >= 250
        for c in handed:
            c.release()
    finally:
        await writer.stop()


def test_no_journal_file_is_left_open_by_a_claim(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(encode(event()))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        claimed = claim(path)
        assert claimed is not None
        claimed.release()
    assert len(os.listdir("/proc/self/fd")) == before


def test_uuids_from_the_database_driver_are_journaled_too():
    from asyncpg.pgproto.pgproto import UUID as PgUUID

    tenant = uuid.uuid4()
    e = event(tenant_id=PgUUID(str(tenant)), key_id=PgUUID(str(uuid.uuid4())))
    back = UsageEvent.from_json(orjson.loads(encode(e)))
    assert back.tenant_id == tenant
    assert back.key_id == e.key_id


async def test_write_mode_answers_at_the_write_and_syncs_behind_it(tmp_path):
    journal = Journal(tmp_path / "journal", wait_for="write")
    journal.start()
    try:
        rows = [event() for _ in range(50)]
        for e in rows:
            journal.append(e)
        assert await journal.durable() is True
        [segment] = segment_files(tmp_path / "journal")
        # Written into the kernel: another process reading the file (a replayer after kill -9) sees it.
        assert [UsageEvent.from_json(orjson.loads(line)) for line in segment.read_bytes().splitlines()] == rows
        for _ in range(200):
            if journal.synced == journal.appended:
                break
            await asyncio.sleep(0.01)
        assert journal.synced == journal.appended  # and on the disk shortly after
    finally:
        await journal.close()
    assert len(os.listdir("/proc/self/fd")) < 200  # the syncer closed the descriptors it was handed


def test_the_journal_mode_is_checked_at_start():
    from service.settings import SettingsError, load_settings

    assert load_settings({"SWITCHYARD_USAGE_JOURNAL": "write"}).usage_journal == "write"
    assert load_settings({"SWITCHYARD_USAGE_JOURNAL": "off"}).journal_dir() is None
    assert load_settings({}).usage_journal == "sync"
    with pytest.raises(SettingsError, match="SWITCHYARD_USAGE_JOURNAL"):
        load_settings({"SWITCHYARD_USAGE_JOURNAL": "sometimes"})


async def test_a_row_postgres_refuses_is_set_aside_and_never_stalls_the_others(tmp_path, database_url):
    tenant = uuid.uuid4()
    metrics = Metrics()
    pool = await create_pool(database_url)
    writer = UsageWriter(lambda: pool, tmp_path / "journal", flush_seconds=0.02, metrics=metrics)
    writer.start()
    try:
        poison = event(tenant, end_user="nul\x00byte")  # Postgres text cannot hold a NUL
        rows = [event(tenant) for _ in range(10)] + [poison] + [event(tenant) for _ in range(10)]
        for e in rows:
            writer.submit(e)
        stored: list = []
        for _ in range(200):
            stored = await fetch(database_url, "SELECT request_id FROM usage_events WHERE tenant_id = $1", tenant)
            if len(stored) == 20 and writer.depth == 0:
                break
            await asyncio.sleep(0.05)
        assert sorted(r["request_id"] for r in stored) == sorted(e.request_id for e in rows if e is not poison)
        assert writer.depth == 0
        assert metrics.usage_rows.labels("rejected")._value.get() == 1
    finally:
        await writer.stop()
        await pool.close()
    # Kept for an operator, outside what is replayed.
    [kept] = (tmp_path / "journal" / "rejected").glob("*.jsonl")
    assert UsageEvent.from_json(orjson.loads(kept.read_bytes())) == poison
    assert segment_files(tmp_path / "journal") == []


async def test_no_journal_file_is_touched_from_the_event_loop(tmp_path, monkeypatch):
    """submit(), a full queue, shutdown: every open, write and sync of a journal file runs in a thread."""

    loop_thread = threading.current_thread()
    ours: set[int] = set()
    on_loop: list[str] = []
    real_open, real_write, real_sync = os.open, os.write, os.fdatasync

    def watched_open(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if str(path).startswith(str(tmp_path)):
            ours.add(fd)
            if threading.current_thread() is loop_thread:
                on_loop.append(f"open {path}")
        return fd

    def watched(name, real):
        def call(fd, *args):
            if fd in ours and threading.current_thread() is loop_thread:
                on_loop.append(name)
            return real(fd, *args)
        return call

    monkeypatch.setattr(os, "open", watched_open)
    monkeypatch.setattr(os, "write", watched("write", real_write))
    monkeypatch.setattr(os, "fdatasync", watched("fdatasync", real_sync))
    writer = UsageWriter(lambda: None, tmp_path / "journal", max_queue=100, flush_seconds=0.02)
    writer.start()
    for _ in range(300):  # past the queue's bound: segments are handed off
        writer.submit(event())
    await writer.durable()
    await asyncio.sleep(0.2)
    await writer.stop()
    assert ours  # the journal did write its files
    assert on_loop == []


async def test_a_failing_disk_is_retried_and_the_rows_kept(tmp_path, monkeypatch):
    metrics = Metrics()
    failures = {"left": 2}
    real_sync = os.fdatasync

    def flaky_sync(fd: int) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OSError(5, "Input/output error")
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", flaky_sync)
    journal = Journal(tmp_path / "journal", metrics=metrics)
    journal.start()
    rows = [event() for _ in range(3)]
    try:
        for e in rows:
            journal.append(e)
        assert await journal.durable() is True
        assert journal.errors == 2
        assert metrics.usage_journal_errors.labels("write")._value.get() == 2
    finally:
        await journal.close()
    # Every row is in some segment the replay will read (a failed segment may hold them twice).
    seen = set()
    for path in segment_files(tmp_path / "journal"):
        claimed = claim(path)
        assert claimed is not None
        seen |= {e.request_id for e in claimed.read(100)}
        claimed.release()
    assert seen == {e.request_id for e in rows}
    assert not list((tmp_path / "journal").glob("*.new"))
