"""SSEParser against every framing the SSE specification allows, and Baseten's stream reader on
malformed and cut streams from the stand-in."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.catalog.loader import load_catalog
from service.chat.sse import SSEParser
from service.errors import ErrorKind, UpstreamError
from service.settings import Timeouts
from service.upstreams.baseten import BasetenAdapter
from service.upstreams.http import create_session
from tests.reliability.bad_sse import chunked, cut_streams, sse_streams
from tests.reliability.fault_control import arm

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(chunks: list[bytes]) -> tuple[list[bytes], bytes | None]:
    parser = SSEParser()
    fed = [payload for chunk in chunks for payload in parser.feed(chunk)]
    return fed, parser.close()


@PROPERTY
@given(st.data())
def test_any_framing_and_any_chunking_yield_exactly_the_payloads(data):
    stream = data.draw(sse_streams())
    fed, closed = parse(data.draw(chunked(stream.raw)))
    # A lone CR at the very end may still be the first half of a CRLF: that event waits for close().
    assert fed + ([closed] if closed is not None else []) == stream.payloads
    if not stream.raw.endswith(b"\r"):
        assert closed is None


@PROPERTY
@given(st.data())
def test_close_returns_the_event_a_cut_stream_left_without_its_blank_line(data):
    stream = data.draw(cut_streams())
    fed, closed = parse(data.draw(chunked(stream.raw)))
    assert fed == stream.payloads[:-1]
    assert closed == stream.payloads[-1]


SSE_PIECES = [b"data:", b"data: ", b"event:", b":", b"\r", b"\n", b"\r\n", b" ", b"x", b"[DONE]", b"\xff",
              b"\xe2\x82", b"{", b"\x00"]
SSE_BYTES = st.lists(st.sampled_from(SSE_PIECES), max_size=60).map(b"".join)


@PROPERTY
@given(st.data(), st.one_of(st.binary(max_size=400), SSE_BYTES))
def test_random_bytes_never_raise(data, raw):
    fed, closed = parse(data.draw(chunked(raw)))
    assert all(isinstance(p, bytes) for p in fed)
    assert closed is None or isinstance(closed, bytes)


def test_parser_is_reusable_after_close():
    parser = SSEParser()
    assert list(parser.feed(b"data: a")) == []
    assert parser.close() == b"a"
    assert parser.close() is None
    assert list(parser.feed(b"data: b\n\n")) == [b"b"]


# ---- Baseten's stream reader over real HTTP from the stand-in ------------------------------------

MODEL = "zai-org/GLM-5.2"
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]}


@pytest.fixture
async def adapter(standins):
    session = create_session()
    try:
        yield BasetenAdapter(session, standins.baseten_url, standins.api_keys["baseten"],
                             Timeouts(connect=2, first_byte=1, total=3))
    finally:
        await session.close()


@pytest.fixture(scope="module")
def route():
    found = load_catalog().find_route("baseten", MODEL)
    assert found is not None
    return found


async def _drain_into(stream, received: list[dict]) -> None:
    """Every chunk into `received`, kept when the stream fails part way."""
    async for chunk in stream:
        received.append(chunk)  # noqa: PERF401 - what came before the failure is the point


async def drain(stream) -> list[dict]:
    return [chunk async for chunk in stream]


async def test_a_clean_stream_reads_to_done_with_usage(adapter, route):
    stream = await adapter.stream(route, HELLO)
    chunks = await drain(stream)
    assert chunks and stream.evidence.usage is not None and stream.evidence.usage.completion_tokens > 0
    assert stream.evidence.finish_reason == "stop"


async def test_a_malformed_chunk_mid_stream_is_a_protocol_error(adapter, route, standins):
    arm(standins, "malformed_chunk:2", model=MODEL)
    stream = await adapter.stream(route, HELLO)
    received: list[dict] = []
    with pytest.raises(UpstreamError) as info:
        await _drain_into(stream, received)
    assert info.value.kind is ErrorKind.PROTOCOL
    assert len(received) == 2


async def test_a_malformed_first_chunk_fails_before_the_stream_is_handed_over(adapter, route, standins):
    arm(standins, "malformed_chunk:0", model=MODEL)
    with pytest.raises(UpstreamError) as info:
        await adapter.stream(route, HELLO)
    assert info.value.kind is ErrorKind.PROTOCOL


async def test_a_dropped_stream_is_a_protocol_error_keeping_the_partial_usage(adapter, route, standins):
    arm(standins, "drop_after_chunks:3", model=MODEL)
    stream = await adapter.stream(route, HELLO)
    received: list[dict] = []
    with pytest.raises(UpstreamError) as info:
        await _drain_into(stream, received)
    err = info.value
    assert err.kind is ErrorKind.PROTOCOL
    assert len(received) == 3
    assert err.evidence.usage is not None and err.evidence.usage.completion_tokens > 0
    assert err.evidence.usage == stream.evidence.usage  # the latest cumulative usage before the cut


async def test_a_stream_dropped_before_any_event_is_a_protocol_error(adapter, route, standins):
    arm(standins, "drop_after_chunks:0", model=MODEL)
    with pytest.raises(UpstreamError) as info:
        await adapter.stream(route, HELLO)
    assert info.value.kind is ErrorKind.PROTOCOL
    assert info.value.evidence.usage is None


async def test_an_error_event_is_a_stream_error_keeping_the_partial_usage(adapter, route, standins):
    arm(standins, "error_event_after_chunks:2", model=MODEL)
    stream = await adapter.stream(route, HELLO)
    with pytest.raises(UpstreamError) as info:
        await drain(stream)
    assert info.value.kind is ErrorKind.STREAM_ERROR
    assert info.value.evidence.usage is not None and info.value.evidence.usage.completion_tokens > 0


async def test_a_stream_that_stalls_mid_way_fails_keeping_the_partial_usage(adapter, route, standins):
    arm(standins, "timeout:2", model=MODEL)
    stream = await adapter.stream(route, HELLO)
    with pytest.raises(UpstreamError) as info:
        await drain(stream)
    assert info.value.retryable
    assert info.value.evidence.usage is not None and info.value.evidence.usage.completion_tokens > 0


async def test_a_stream_that_stalls_mid_way_is_a_timeout(adapter, route, standins):
    arm(standins, "timeout:2", model=MODEL)
    stream = await adapter.stream(route, HELLO)
    with pytest.raises(UpstreamError) as info:
        await drain(stream)
    assert info.value.kind is ErrorKind.TIMEOUT
