"""The attempt seam under fault injection: any exception at any await point of an attempt, streamed or
not, and the client leaving at any point of a stream. After each: one usage row per attempt begun,
every slot, probe, in-flight count and budget hold given back, and the row's status and error kind
saying what happened."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import ROUND_HALF_UP, Decimal

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from service.errors import ErrorKind, GatewayError, UpstreamError
from service.gateway.relay import Relay
from tests.money.harness import Boom, Fault, assemble, chat_body, encoder


def _aiohttp_error() -> aiohttp.ClientResponseError:
    # What httpx-aiohttp once let through from the Orthogonal and MCP clients.
    info = aiohttp.RequestInfo(URL("http://x"), "POST", CIMultiDictProxy(CIMultiDict()), URL("http://x"))
    return aiohttp.ClientResponseError(info, (), status=502, message="bad gateway")


# (exception factory, the row's status, its error kind, falls back to the next route)
EXCEPTIONS = {
    "upstream_5xx": (lambda: UpstreamError(ErrorKind.UPSTREAM_SERVER, "503"), "error", "upstream_server", True),
    "upstream_timeout": (lambda: UpstreamError(ErrorKind.TIMEOUT, "slow"), "error", "timeout", True),
    "upstream_bad_request": (lambda: UpstreamError(ErrorKind.INVALID_REQUEST, "bad"), "error", "invalid_request",
                             False),
    "upstream_rate_limited": (lambda: UpstreamError(ErrorKind.RATE_LIMITED, "429", retry_after=2.0), "error",
                              "rate_limited", True),
    "value_error": (lambda: ValueError("bug"), "error", "internal", True),
    "boom": (lambda: Boom("bug"), "error", "internal", True),
    "aiohttp_response_error": (_aiohttp_error, "error", "internal", True),
    "timeout_error": (TimeoutError, "error", "internal", True),
    "key_error": (lambda: KeyError("x"), "error", "internal", True),
    "cancelled": (asyncio.CancelledError, "cancelled", "client_disconnected", False),
}
POINTS = 3  # await points before an answer (or before a stream is handed over)
CHUNKS = 5


async def _check_released(a) -> None:
    """Everything an attempt or a request took is back."""
    assert all(v == 0 for v in a.capacity._inflight.values()), a.capacity._inflight
    assert a.capacity.group("xpay").inflight == 0
    assert all(not h.probing for h in a.health._routes.values())
    assert all(v == 0 for v in a.inflight_gauges().values()), a.inflight_gauges()
    assert all(s.reserved == 0 for s in a.leaser._slices.values()), [s.reserved for s in a.leaser._slices.values()]


def _rows_per_attempt(a, ctx) -> list:
    rows = [e for e in a.sink.events if e.request_id == ctx.request_id]
    assert [e.attempt for e in rows] == list(range(1, ctx.attempts + 1)), "exactly one row per attempt begun"
    return rows


async def _settled_spend(a) -> Decimal:
    return sum((s.pending for s in a.leaser._slices.values() if s.scope.startswith("budget:")), Decimal(0))


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
@pytest.mark.parametrize("at", range(POINTS))
async def test_non_stream_any_exception_at_any_await_point(database_url, name, at):
    make, status, kind, falls_back = EXCEPTIONS[name]
    a = await assemble(database_url, Fault("baseten", at, make()), markup="0.25")
    try:
        body, view = chat_body(stream=False, provider={"order": ["baseten", "xpay"]})
        ctx = a.context(stream=False)
        failure: BaseException | None = None
        try:
            answer = await a.gateway.complete(ctx, body, view)
        except (GatewayError, asyncio.CancelledError) as exc:
            answer, failure = None, exc
        assert failure is None or not falls_back, f"{name} should have fallen back, got {failure!r}"
        rows = _rows_per_attempt(a, ctx)
        assert (rows[0].status, rows[0].error_code) == (status, kind)
        if falls_back:
            assert answer is not None and len(rows) == 2 and rows[1].status == "ok"
            assert rows[1].front_end == "xpay"
            # What the client is told is the sum of what its attempts are billed.
            assert Decimal(repr(answer.body["usage"]["cost"])) == sum(r.billed_usd for r in rows)
            assert answer.headers["x-switchyard-cost-usd"] == format(sum(r.billed_usd for r in rows), "f")
        else:
            assert len(rows) == 1
        for row in rows:
            marked_up = row.provider_cost_usd * Decimal("1.25")
            assert row.billed_usd == marked_up.quantize(Decimal("1E-10"), rounding=ROUND_HALF_UP)
        await _check_released(a)
        assert await _settled_spend(a) == sum(r.billed_usd for r in rows)
    finally:
        await a.pool.close()


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
@pytest.mark.parametrize("at", range(POINTS + CHUNKS))
async def test_stream_any_exception_at_any_await_point(database_url, name, at):
    make, status, kind, falls_back = EXCEPTIONS[name]
    a = await assemble(database_url, Fault("baseten", at, make()), markup="0.5")
    try:
        body, view = chat_body(stream=True, provider={"order": ["baseten", "xpay"]})
        ctx = a.context(stream=True)
        received = b""
        try:
            relay, _ = await a.gateway.stream(ctx, body, view, encoder(body))
            try:
                async for data in relay:
                    received += data
            finally:
                await relay.aclose()
        except (GatewayError, asyncio.CancelledError):
            pass
        rows = _rows_per_attempt(a, ctx)
        assert (rows[0].status, rows[0].error_code) == (status, kind)
        mid_stream = at >= POINTS
        if mid_stream and kind != "client_disconnected":
            # After the first byte there is no fallback: the stream ends with an error event.
            assert len(rows) == 1 and b'"error"' in received and received.endswith(b"data: [DONE]\n\n")
            # What the client received is billed: the cumulative usage before the failure.
            assert rows[0].completion_tokens == at - POINTS
        elif falls_back and not mid_stream:
            assert len(rows) == 2 and rows[1].status == "ok"
            usage_line = [line for line in received.split(b"\n\n") if b'"usage"' in line and b'"cost"' in line]
            assert usage_line, "the final usage chunk carries the billed cost"
        await _check_released(a)
        assert await _settled_spend(a) == sum(r.billed_usd for r in rows)
    finally:
        await a.pool.close()


@pytest.mark.parametrize("leave_after", range(CHUNKS + 1))
@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_client_leaving_at_any_point_of_a_stream(database_url, leave_after, how):
    a = await assemble(database_url, None)
    try:
        body, view = chat_body(stream=True)
        ctx = a.context(stream=True)
        relay, _ = await a.gateway.stream(ctx, body, view, encoder(body))

        async def consume(r: Relay) -> int:
            seen = 0
            async for _ in r:
                seen += 1
                if seen > leave_after:
                    if how == "cancel":
                        raise asyncio.CancelledError
                    break
            return seen

        task = asyncio.ensure_future(consume(relay))
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.aclose()
        rows = _rows_per_attempt(a, ctx)
        assert len(rows) == 1
        # Each write of the relay holds one chunk here; the last write carries the end of the stream.
        if leave_after >= CHUNKS:
            assert rows[0].status == "ok"
        else:
            assert (rows[0].status, rows[0].error_code) == ("cancelled", "client_disconnected")
            assert rows[0].client_disconnected
        await _check_released(a)
    finally:
        await a.pool.close()


async def test_a_relay_dropped_before_it_starts_still_ends_its_attempt(database_url):
    import gc

    a = await assemble(database_url, None)
    try:
        body, view = chat_body(stream=True)
        ctx = a.context(stream=True)
        relay, _ = await a.gateway.stream(ctx, body, view, encoder(body))
        del relay
        gc.collect()
        rows = _rows_per_attempt(a, ctx)
        assert len(rows) == 1 and rows[0].status == "cancelled"
        await _check_released(a)
    finally:
        await a.pool.close()


async def test_an_upstream_context_refusal_falls_back_only_when_the_fit_was_uncertain(database_url):
    """A prompt within the context margin is tried, not refused outright; if the upstream's own
    count says it does not fit, the next route is tried (a route that surely fit would not be)."""
    refusal = UpstreamError(ErrorKind.INVALID_REQUEST, "This model's maximum context length is 128072 tokens. "
                            "However, you requested 131000 tokens.")
    a = await assemble(database_url, Fault("baseten", 0, refusal))
    try:
        # About 121,000 estimated prompt tokens: gpt-oss-120b's 128,072 may or may not hold them.
        body, view = chat_body(stream=False, max_tokens=4000, provider={"order": ["baseten", "xpay"]},
                               messages=[{"role": "user", "content": "lorem ipsum " * 40_000}])
        ctx = a.context(stream=False)
        answer = await a.gateway.complete(ctx, body, view)
        rows = _rows_per_attempt(a, ctx)
        assert [(r.front_end, r.status, r.error_code) for r in rows] == [
            ("baseten", "error", "invalid_request"), ("xpay", "ok", None)]
        assert answer.body["choices"][0]["message"]["content"]
        # A short prompt surely fits: the same refusal is the client's error, not a reason to retry.
        a.adapters["baseten"].fault = Fault("baseten", 0, refusal)
        short, short_view = chat_body(stream=False, provider={"order": ["baseten", "xpay"]})
        ctx = a.context(stream=False)
        with pytest.raises(GatewayError) as caught:
            await a.gateway.complete(ctx, short, short_view)
        assert caught.value.status == 400 and len(_rows_per_attempt(a, ctx)) == 1
        await _check_released(a)
    finally:
        await a.pool.close()
