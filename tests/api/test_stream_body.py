"""The fast path's stream relay: how a stream ends when its client goes away, or the write fails."""

from __future__ import annotations

import asyncio
import contextlib

from service.api.inbound_asgi import stream_body


class Relay:
    """Stands in for the gateway's relay generator: records how it ended."""

    def __init__(self, chunks: int, wait: float = 0.0) -> None:
        self.chunks, self.wait, self.ended = chunks, wait, None

    async def __call__(self):
        try:
            for i in range(self.chunks):
                await asyncio.sleep(self.wait)  # waiting on the upstream
                yield b"data: %d\n\n" % i
            self.ended = "finished"
        except asyncio.CancelledError:
            self.ended = "cancelled"
            raise
        except GeneratorExit:
            self.ended = "closed"
            raise


def receiver(disconnect_after: float | None):
    async def receive():
        if disconnect_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(disconnect_after)
        return {"type": "http.disconnect"}
    return receive


async def test_a_whole_stream_is_sent_and_closed():
    relay, sent = Relay(3), []

    async def send(message):
        sent.append(message)

    await stream_body(relay(), receiver(None), send)
    assert relay.ended == "finished"
    assert [m["body"] for m in sent] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
    assert sent[-1]["more_body"] is False


async def test_a_disconnect_cancels_the_relay_where_it_waits_and_nothing_else():
    relay, sent = Relay(100, wait=0.02), []

    async def send(message):
        sent.append(message)

    task = asyncio.current_task()
    await asyncio.wait_for(stream_body(relay(), receiver(0.1), send), 5)
    assert relay.ended == "cancelled"  # the relay meters a client disconnect on this
    assert task.cancelling() == 0  # the request's own task carries on, uncancelled
    assert 0 < len(sent) < 100 and all(m.get("more_body") for m in sent)


async def test_a_refused_write_closes_the_relay():
    relay = Relay(10)

    async def send(message):
        raise RuntimeError("ASGI transport error")  # what the server says once the peer is gone

    await stream_body(relay(), receiver(None), send)
    assert relay.ended == "closed"


async def test_a_cancellation_from_outside_is_not_swallowed():
    relay = Relay(100, wait=0.05)

    async def send(message):
        pass

    inner = asyncio.get_running_loop().create_task(stream_body(relay(), receiver(None), send))
    await asyncio.sleep(0.1)
    inner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await inner
    assert inner.cancelled()
    assert relay.ended == "cancelled"


async def test_a_relay_that_never_started_still_runs_its_bookkeeping_when_the_start_is_refused():
    from service.api.inbound_asgi import _refused

    relay = Relay(3)
    await stream_body(relay(), receiver(None), _refused)
    assert relay.ended == "closed"  # entered, so its finally ran: the attempt is metered


async def test_keepalive_pings_while_the_upstream_is_silent_and_never_between_fast_chunks():
    relay, sent = Relay(3, wait=0.25), []

    async def send(message):
        sent.append(message)

    await stream_body(relay(), receiver(None), send, keepalive=lambda: b"event: ping\n\n", keepalive_seconds=0.1)
    bodies = [m["body"] for m in sent]
    assert relay.ended == "finished"
    assert [b for b in bodies if b.startswith(b"data")] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]
    assert bodies.count(b"event: ping\n\n") >= 3  # at least one in each silent wait
    fast, sent = Relay(3), []
    await stream_body(fast(), receiver(None), send, keepalive=lambda: b"event: ping\n\n", keepalive_seconds=0.1)
    assert b"event: ping\n\n" not in [m["body"] for m in sent]


async def test_a_disconnect_during_keepalive_still_cancels_the_relay():
    relay, sent = Relay(100, wait=0.3), []

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(stream_body(relay(), receiver(0.5), send, keepalive=lambda: b": ping\n\n",
                                       keepalive_seconds=0.1), 5)
    assert relay.ended == "cancelled"
