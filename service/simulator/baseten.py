"""The stand-in Baseten Model API: a lean raw-ASGI app that answers like inference.baseten.co/v1.

Raw ASGI rather than a framework because the same app is the upstream in gateway benchmarks, where
its own per-request cost must stay negligible next to the gateway's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from service.asgi import ASGIApp, ClientGone, Receive, Scope, Send, read_request_body
from service.simulator.baseten_checks import Reject, check_auth, validate
from service.simulator.catalog import load_fake_catalog
from service.simulator.control import BasetenConfig, RequestLog, handle_control
from service.simulator.engine import (
    FakeModel,
    Generation,
    JsonObject,
    coalesce_chunks,
    completion_body,
    generate,
    stream_chunks,
)
from service.simulator.faults import (
    Fault,
    FaultBook,
    FaultSpecError,
    error_bytes,
    object_error,
    parse_fault,
    stream_error_event,
    string_error,
)

JSON = [(b"content-type", b"application/json")]
DONE_EVENT = b"data: [DONE]\n\n"
SSE = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass
class BasetenState:
    models: dict[str, FakeModel] = field(default_factory=load_fake_catalog)
    config: BasetenConfig = field(default_factory=BasetenConfig.from_env)
    prefix: str = "/v1"
    log_limit: int = 1000
    faults: FaultBook = field(default_factory=FaultBook)

    def __post_init__(self) -> None:
        self._initial = self.config
        self.log = RequestLog(self.log_limit, self.config.log_requests)
        self._listing: bytes | None = None

    def reset(self) -> None:
        self.config = self._initial
        self.faults.clear()
        self.log.clear()
        self.log.enabled = self.config.log_requests

    def configure(self, changes: Mapping[str, Any]) -> None:
        self.config = self.config.updated(changes)
        self.log.enabled = self.config.log_requests

    def listing(self) -> bytes:
        if self._listing is None:
            self._listing = msgspec.json.encode({"data": [m.listing() for m in self.models.values()]})
        return self._listing


def encode_chunk(chunk: JsonObject) -> bytes:
    """OpenAI framing, as service.chat.sse does it; kept here so the stand-in needs only msgspec."""
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"




def _model_header(model_id: str) -> bytes:
    digest = hashlib.sha1(model_id.encode("utf-8"), usedforsecurity=False).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:8].encode("ascii")


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    length = [(b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": status, "headers": headers + length})
    await send({"type": "http.response.body", "body": body})


async def _hang(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def create_app(state: BasetenState | None = None) -> ASGIApp:
    state = state or BasetenState()
    chat_path = state.prefix + "/chat/completions"
    models_path = state.prefix + "/models"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path == chat_path and method == "POST":
                await _chat(state, scope, receive, send)
            elif path == models_path and method == "GET":
                await _models(state, scope, receive, send)
            elif path.startswith("/__control/"):
                raw = await read_request_body(receive, 10 * 1024 * 1024, None) or b""
                status, payload = handle_control(state, method, path, raw)
                await _send(send, status, msgspec.json.encode(payload), JSON)
            elif path in (chat_path, models_path):
                await _send(send, 405, string_error("method not allowed"), JSON)
            else:
                await _send(send, 404, string_error("not found"), JSON)
        except ClientGone:
            return

    return app


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _chat(state: BasetenState, scope: Scope, receive: Receive, send: Send) -> None:
    config = state.config
    headers = _headers(scope)
    base = [
        (b"x-baseten-request-id", (uuid.uuid4().hex + os.urandom(3).hex()[:5]).encode("ascii")),
        (b"x-baseten-accepted-at", str(int(time.time() * 1000)).encode("ascii")),
    ]
    declared = headers.get("content-length")
    length = int(declared) if declared and declared.isdigit() else None
    raw = await read_request_body(receive, config.max_body_bytes, length)
    query = scope.get("query_string", b"").decode("latin-1")
    if raw is None:
        state.log.record("POST", scope["path"], query, headers, None)
        await _send(send, 413, string_error("request entity too large"), JSON + base)
        return
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        body = None
    if state.log.enabled:
        logged = body if body is not None else raw.decode("utf-8", "replace")
        state.log.record("POST", scope["path"], query, headers, logged)
    try:
        fault = _fault_for(state, scope["path"], headers, body)
        if await _before_response(fault, receive):
            return
        check_auth(config, headers)
        if body is None:
            raise Reject(400, object_error(400, "Validation: request body is not valid JSON"))
        model = validate(state.models, config, body)
    except Reject as rejected:
        await _send(send, rejected.status, rejected.body, JSON + base + rejected.headers)
        return
    base.append((b"x-baseten-model-id", _model_header(model.id)))
    gen = generate(model, body, fake_cached=config.fake_cached, fake_tool_call=config.fake_tool_call)
    if body.get("stream") is True:
        await _stream(state, model, gen, body, fault, receive, send, SSE + base)
    else:
        await _complete(config, model, gen, fault, receive, send, JSON + base)


async def _before_response(fault: Fault, receive: Receive) -> bool:
    """Apply the faults that act before any byte is sent; True when the client went away meanwhile."""
    if fault.delay_first_byte_ms:
        await asyncio.sleep(fault.delay_first_byte_ms / 1000)
    if fault.timeout_after_chunks == 0:
        await _hang(receive)
        return True
    if fault.status is not None:
        extra = [(b"retry-after", fault.retry_after.encode("ascii"))] if fault.retry_after else []
        raise Reject(fault.status, error_bytes(fault.status, None, fault.shape), extra)
    return False


async def _models(state: BasetenState, scope: Scope, receive: Receive, send: Send) -> None:
    headers = _headers(scope)
    if state.log.enabled:
        query = scope.get("query_string", b"").decode("latin-1")
        state.log.record("GET", scope["path"], query, headers, None)
    try:
        if await _before_response(_fault_for(state, scope["path"], headers, None), receive):
            return
    except Reject as rejected:
        await _send(send, rejected.status, rejected.body, JSON + rejected.headers)
        return
    await _send(send, 200, state.listing(), JSON)


def _fault_for(state: BasetenState, path: str, headers: Mapping[str, str], body: object) -> Fault:
    model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
    fault = state.faults.take(path, model) or Fault()
    spec = headers.get("x-fake-fault")
    if spec:
        try:
            fault = fault.merged(parse_fault(spec))
        except FaultSpecError as exc:
            raise Reject(400, string_error(f"bad X-Fake-Fault header: {exc}")) from None
    return fault


async def _complete(
    config: BasetenConfig,
    model: FakeModel,
    gen: Generation,
    fault: Fault,
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
) -> None:
    if config.total_latency_ms:
        await asyncio.sleep(config.total_latency_ms / 1000)
    payload = msgspec.json.encode(completion_body(model, gen))
    if fault.malformed_chunk is not None:
        payload = payload[: len(payload) // 2]
    if fault.drop_after_chunks is not None or fault.timeout_after_chunks:
        # Promise the whole body, deliver half, then end the connection (or stall) mid-body.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (b"content-length", str(len(payload)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
        if fault.timeout_after_chunks:
            await _hang(receive)
        return
    await _send(send, 200, payload, headers)


async def _stream(
    state: BasetenState,
    model: FakeModel,
    gen: Generation,
    body: JsonObject,
    fault: Fault,
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
) -> None:
    config = state.config
    options = body.get("stream_options") or {}
    include_usage = options.get("include_usage", True) is not False
    continuous = include_usage and options.get("continuous_usage_stats", True) is not False
    chunks = stream_chunks(
        model, gen, include_usage=include_usage, continuous_usage=continuous,
        finish_before_content=fault.finish_before_content,
    )
    chunks = coalesce_chunks(chunks, config.tokens_per_chunk)
    if fault.end_after_finish:
        finish = next((i for i, c in enumerate(chunks)
                       if c.get("choices") and c["choices"][0].get("finish_reason")), len(chunks) - 1)
        chunks = chunks[: finish + 1]
    events = [encode_chunk(c) for c in chunks]
    if fault.malformed_chunk is not None and events:
        at = min(fault.malformed_chunk, len(events) - 1)
        events[at] = events[at][: len(events[at]) // 2] + b"\n\n"
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if fault.end_after_finish:
        # A body that ends cleanly, just without the usage-only chunk and `[DONE]`.
        await send({"type": "http.response.body", "body": b"".join(events)})
        return
    if not (fault.shapes_stream or config.ttft_ms or config.inter_token_ms):
        await send({"type": "http.response.body", "body": b"".join(events) + DONE_EVENT})
        return
    gone = asyncio.Event()

    async def watch() -> None:
        await _hang(receive)
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        for index, event in enumerate(events):
            if index == fault.drop_after_chunks:
                return  # returning mid-body makes the server close the connection: no [DONE], no last chunk
            if index == fault.error_event_after_chunks:
                await send({"type": "http.response.body", "body": stream_error_event()})
                return
            if index == fault.timeout_after_chunks:
                await gone.wait()
                return
            delay = config.ttft_ms if index == 0 else config.inter_token_ms * config.tokens_per_chunk
            delay += fault.inter_chunk_ms if index else 0
            if delay:
                await asyncio.sleep(delay / 1000)
            if gone.is_set():
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if fault.drop_after_chunks is not None and fault.drop_after_chunks >= len(events):
            return
        if fault.error_event_after_chunks is not None and fault.error_event_after_chunks >= len(events):
            await send({"type": "http.response.body", "body": stream_error_event()})
            return
        await send({"type": "http.response.body", "body": DONE_EVENT})
    finally:
        watcher.cancel()
