"""The body idle bound (service.asgi.body_timeout_middleware) on its own: a stalled body raises
BodyTimeout within the bound plus one check period, a slow but steady one never does, a
cancellation from elsewhere stays a cancellation, and nothing after the body is bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.asgi import BodyTimeout, Message, Receive, Scope, Send, body_timeout_middleware

IDLE = 0.2
SCOPE: Scope = {"type": "http"}


async def _never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def _pieces(*delays: float, last_more: bool = False) -> Receive:
    """A body in len(delays) pieces, each after its delay; then disconnect after a long wait."""
    queue = list(delays)

    async def receive() -> Message:
        if not queue:
            await asyncio.sleep(IDLE * 3)
            return {"type": "http.disconnect"}
        await asyncio.sleep(queue.pop(0))
        return {"type": "http.request", "body": b"x", "more_body": bool(queue) or last_more}

    return receive


async def _read_all(receive: Receive) -> list[Message]:
    got = []
    while True:
        message = await receive()
        got.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            return got


def _run(app_body, receive: Receive):  # type: ignore[no-untyped-def]
    result: dict[str, object] = {}

    async def app(scope: Scope, rcv: Receive, send: Send) -> None:
        result["value"] = await app_body(rcv)

    async def noop_send(message: Message) -> None:
        return None

    async def main() -> None:
        await body_timeout_middleware(app, IDLE)(SCOPE, receive, noop_send)

    return main, result


async def test_a_stalled_body_times_out_within_the_bound_and_a_check_period() -> None:
    main, _ = _run(_read_all, _never)
    started = time.monotonic()
    with pytest.raises(BodyTimeout):
        await main()
    elapsed = time.monotonic() - started
    assert IDLE <= elapsed < IDLE + IDLE / 4 + 0.15


async def test_a_slow_steady_body_is_never_cut() -> None:
    # Six pieces, each after 60% of the bound: 0.72 s in all, far past the bound, no gap as long.
    main, result = _run(_read_all, _pieces(*[IDLE * 0.6] * 6))
    await main()
    messages = result["value"]
    assert isinstance(messages, list) and len(messages) == 6


async def test_the_reader_task_goes_on_after_its_timeout() -> None:
    async def read_then_sleep(receive: Receive) -> str:
        with pytest.raises(BodyTimeout):
            await receive()
        await asyncio.sleep(0.01)  # not cancelled again: the timeout's cancellation was consumed
        return "went on"

    main, result = _run(read_then_sleep, _never)
    await main()
    assert result["value"] == "went on"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    main, _ = _run(_read_all, _never)
    task = asyncio.ensure_future(main())
    await asyncio.sleep(IDLE / 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_waits_after_the_body_are_not_bounded() -> None:
    async def body_then_disconnect(receive: Receive) -> str:
        await _read_all(receive)
        return (await receive())["type"]  # waits 3x the bound for the disconnect

    main, result = _run(body_then_disconnect, _pieces(0.0))
    await main()
    assert result["value"] == "http.disconnect"


async def test_only_the_stalled_reads_of_many_time_out() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await _read_all(receive)

    async def noop_send(message: Message) -> None:
        return None

    middleware = body_timeout_middleware(app, IDLE)  # one instance, as one worker serves them all
    outcomes: list[str] = []

    async def one(receive: Receive) -> None:
        try:
            await middleware(SCOPE, receive, noop_send)
            outcomes.append("done")
        except BodyTimeout:
            outcomes.append("timeout")

    reads = [_never if i % 3 == 0 else _pieces(IDLE * 0.5, IDLE * 0.5) for i in range(30)]
    await asyncio.gather(*(one(r) for r in reads))
    assert outcomes.count("timeout") == 10 and outcomes.count("done") == 20
