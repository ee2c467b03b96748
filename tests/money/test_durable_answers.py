"""An answered request is a billed request: the answer's last bytes wait until the request's usage
rows are durable (the ledger's journal), streamed or not, on a fallback too."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import ErrorKind, GatewayError, UpstreamError
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


async def _refused_after_an_attempt(database_url, stream: bool) -> None:
    # The only route allowed fails: the error answer says the request ended, and the failed
    # attempt's row (a marketplace may charge for a failed call) is on disk before it is sent.
    a = await assemble(database_url, Fault("baseten", 0, UpstreamError(ErrorKind.UPSTREAM_SERVER, "503")))
    try:
        sink = _gated(a)
        body, view = chat_body(stream=stream, provider={"order": ["baseten"], "allow_fallbacks": False})
        ctx = a.context(stream=stream)
        if stream:
            call = a.gateway.stream(ctx, body, view, encoder(body))
        else:
            call = a.gateway.complete(ctx, body, view)
        task = asyncio.create_task(call)
        await _until(lambda: sink.covered)
        await asyncio.sleep(0.02)
        assert not task.done()  # no error answer while the failed attempt's row is not on disk
        assert sink.covered == [1]
        sink.gate.set()
        with pytest.raises(GatewayError):
            await task
    finally:
        await a.pool.close()


async def test_an_error_answer_waits_for_its_attempts_rows_to_be_durable(database_url):
    await _refused_after_an_attempt(database_url, stream=False)


async def test_a_stream_refused_before_its_first_byte_waits_for_its_attempts_rows(database_url):
    await _refused_after_an_attempt(database_url, stream=True)
