"""An answered request is a billed request: the answer's last bytes wait until the request's usage
rows are durable (the ledger's journal), streamed or not, on a fallback too."""

from __future__ import annotations

import asyncio

from service.errors import ErrorKind, UpstreamError
from tests.money.harness import Fault, ListSink, assemble, chat_body, encoder


class GatedSink(ListSink):
    """A ledger whose disk is slow until the test says so; remembers the rows durable() covered."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.covered: list[int] = []

    async def durable(self) -> None:
        self.covered.append(len(self.events))
        await self.gate.wait()


def _gated(a) -> GatedSink:
    sink = GatedSink()
    a.gateway.attempts.ledger = sink
    a.sink = sink
    return sink


async def _until(predicate) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never happened")


async def test_a_whole_answer_waits_for_its_rows_to_be_durable(database_url):
    # The first route fails: both attempts' rows are covered before the answer is returned.
    a = await assemble(database_url, Fault("baseten", 0, UpstreamError(ErrorKind.UPSTREAM_SERVER, "503")))
    try:
        sink = _gated(a)
        body, view = chat_body(stream=False, provider={"order": ["baseten", "xpay"]})
        task = asyncio.create_task(a.gateway.complete(a.context(stream=False), body, view))
        await _until(lambda: sink.covered)
        await asyncio.sleep(0.02)
        assert not task.done()  # no answer while its rows are not on disk
        assert sink.covered == [2]
        sink.gate.set()
        answer = await task
        assert answer.body["choices"]
    finally:
        await a.pool.close()


async def test_a_stream_sends_its_last_event_only_once_its_rows_are_durable(database_url):
    a = await assemble(database_url, None)
    try:
        sink = _gated(a)
        body, view = chat_body(stream=True)
        relay, _ = await a.gateway.stream(a.context(stream=True), body, view, encoder(body))
        received: list[bytes] = []

        async def read() -> None:
            async for data in relay:
                received.append(data)  # noqa: PERF401 - one at a time: the test reads them mid-stream

        task = asyncio.create_task(read())
        await _until(lambda: sink.covered)
        await asyncio.sleep(0.02)
        assert sink.covered == [1]
        sent = b"".join(received)
        assert b"[DONE]" not in sent
        assert b'"cost"' not in sent  # the usage chunk (with the billed cost) is part of the tail
        sink.gate.set()
        await task
        assert b"".join(received).endswith(b"data: [DONE]\n\n")
    finally:
        await relay.aclose()
        await a.pool.close()
