"""Relays an upstream stream to the client through the caller's API's encoder, and ends its attempt.

The relay owns the streamed attempt from its first chunk to its end: however the stream ends (the
upstream's last event, an upstream error, the client gone, a bug) the attempt ends exactly once
and the request is settled, before anything else is awaited. `aclose()` ends an attempt whose relay
never started (the client left before the response began).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

from service.chat.sse import DONE_EVENT, encode_chunk
from service.errors import ErrorKind, GatewayError, UpstreamError
from service.gateway.attempt import Attempt, FinishedAttempt
from service.gateway.context import RequestContext
from service.upstreams.base import ChunkStream, Usage


class StreamEncoder(Protocol):
    """Turns Chat Completions chunks into the caller's API's stream."""

    def chunk(self, chunk: dict[str, Any]) -> bytes: ...

    def end(self, usage: Usage | None, billed_usd: Decimal) -> bytes:
        """The stream's last bytes after the upstream's last event: usage with the billed cost."""
        ...

    def fail(self, err: GatewayError) -> bytes:
        """The stream's last bytes after a failure once it had started."""
        ...


def add_cost(usage: dict[str, Any], billed_usd: Decimal) -> dict[str, Any]:
    # A JSON number, as OpenRouter's clients expect: the billed amount has at most 10 decimals and,
    # below $100,000, at most 15 significant digits, so the number reads back as the exact amount.
    usage["cost"] = float(billed_usd)
    return usage


def usage_json(usage: Usage, billed_usd: Decimal) -> dict[str, Any]:
    """An OpenAI usage object for these tokens, with the billed cost."""
    return add_cost({
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }, billed_usd)


def strip_reasoning(body: dict[str, Any]) -> None:
    """Remove the reasoning text from an answer or a chunk (OpenRouter's `reasoning.exclude`): the
    tokens are still generated and billed; the client asked not to receive them."""
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            for key in ("message", "delta"):
                part = choice.get(key)
                if isinstance(part, dict):
                    part.pop("reasoning_content", None)
                    part.pop("reasoning", None)


class ChatEncoder:
    """OpenAI semantics on top of Baseten's: without include_usage the client sees no usage;
    with it, usage rides only on the final usage chunk, unless the client asked for
    continuous_usage_stats. The final usage chunk carries the request's billed cost."""

    __slots__ = ("continuous", "include_usage", "last", "usage_chunk")

    def __init__(self, include_usage: bool, continuous: bool) -> None:
        self.include_usage = include_usage
        self.continuous = continuous and include_usage
        self.usage_chunk: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None

    @classmethod
    def for_body(cls, body: dict[str, Any]) -> ChatEncoder:
        options = body.get("stream_options") or {}
        return cls(bool(options.get("include_usage")), bool(options.get("continuous_usage_stats")))

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        self.last = chunk
        if not chunk.get("choices"):
            if chunk.get("usage") is not None:
                # The usage-only chunk: sent last, once the billed cost is known.
                self.usage_chunk = chunk
                return b""
            if "choices" in chunk:
                return b""
        if not self.continuous and "usage" in chunk:
            if self.include_usage:
                chunk["usage"] = None
            else:
                del chunk["usage"]
        return encode_chunk(chunk)

    def end(self, usage: Usage | None, billed_usd: Decimal) -> bytes:
        if not self.include_usage:
            return DONE_EVENT
        chunk = self.usage_chunk
        if chunk is None and usage is not None and self.last is not None:
            last = self.last
            chunk = {"id": last.get("id"), "object": "chat.completion.chunk", "created": last.get("created"),
                     "model": last.get("model"), "choices": [],
                     "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                               "total_tokens": usage.total_tokens}}
        if chunk is None:
            return DONE_EVENT
        usage_obj = chunk.get("usage")
        if isinstance(usage_obj, dict):
            add_cost(usage_obj, billed_usd)
        return encode_chunk(chunk) + DONE_EVENT

    def fail(self, err: GatewayError) -> bytes:
        return b"data: " + err.encoded() + b"\n\n" + DONE_EVENT


class Relay:
    """An async iterator of the bytes to send; `on_end(ctx, finished)` runs once the attempt ends."""

    def __init__(self, ctx: RequestContext, attempt: Attempt, upstream: ChunkStream, encoder: StreamEncoder,
                 on_end: Callable[[RequestContext, FinishedAttempt, float | None], None], *,
                 exclude_reasoning: bool = False, durable: Callable[[], Awaitable[None]] | None = None) -> None:
        self.ctx = ctx
        self.exclude_reasoning = exclude_reasoning
        self.attempt = attempt
        self.upstream = upstream
        self.encoder = encoder
        self._on_end = on_end
        self._iterator: AsyncIterator[bytes] | None = None
        self._upstream_to_first_token: float | None = None
        # Awaited after a complete answer, before its last bytes leave (stored responses).
        self.after: Callable[[], Awaitable[None]] | None = None
        # Awaited before the stream's last event: its usage rows are on disk before the client has it all.
        self._durable = durable

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterator is None:
            self._iterator = self._relay()
        return self._iterator

    async def aclose(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]
        if self.attempt.finished is None:
            # Never started: the client left before the response began.
            self.ctx.client_disconnected = True
            self._end(self.attempt.abandon(None))
            _close_later(self.upstream)

    def __del__(self) -> None:
        # Dropped without ever being iterated or closed: the attempt and the request's holds end here.
        attempt = getattr(self, "attempt", None)
        if attempt is not None and attempt.finished is None:
            try:
                self.ctx.client_disconnected = True
                self._end(attempt.abandon(None))
            except Exception:  # noqa: BLE001, S110 - never raise from a finalizer
                pass

    def _end(self, finished: FinishedAttempt) -> None:
        self._on_end(self.ctx, finished, self._upstream_to_first_token)

    def _first_token(self) -> None:
        """Marks the first bytes sent to the client; keeps the upstream's share of that wait."""
        attempt, ctx = self.attempt, self.ctx
        if attempt.first_token_t is not None:
            return
        first_token_t = attempt.mark_first_token()
        ctx.ttft = ctx.elapsed()
        # Earlier attempts' time plus this one's wait: the upstream share of the TTFT.
        self._upstream_to_first_token = ctx.upstream_seconds + (first_token_t - attempt.t0)

    async def _relay(self) -> AsyncIterator[bytes]:
        upstream, encoder, attempt, ctx = self.upstream, self.encoder, self.attempt, self.ctx
        ready = getattr(upstream, "buffered", None)
        batch: list[bytes] = []
        finished = False
        error: UpstreamError | None = None
        internal: Exception | None = None
        exclude = self.exclude_reasoning
        try:
            async for chunk in upstream:
                if exclude:
                    strip_reasoning(chunk)
                out = encoder.chunk(chunk)
                if out:
                    batch.append(out)
                # Events that arrived together leave together: one write, not one per event.
                if not batch or (ready is not None and ready()):
                    continue
                self._first_token()
                data, batch = b"".join(batch), []
                yield data
            if batch:
                # The last events came in the same read as the end (for a fast upstream, the whole
                # stream): they leave before the attempt ends, which reads their first-byte time.
                self._first_token()
                data, batch = b"".join(batch), []
                yield data
            finished = True
        except UpstreamError as err:
            error = err
        except Exception as exc:  # noqa: BLE001 - a bug while relaying: the client gets an error event
            internal = exc
        except BaseException:
            # GeneratorExit or cancellation: the client went away.
            ctx.client_disconnected = True
            raise
        finally:
            # Bookkeeping first and without awaiting: a client that went away cancels this
            # generator through a scope that cancels every later await too.
            evidence = upstream.evidence
            if finished:
                done = attempt.succeed(evidence)
            elif error is not None:
                error.evidence.merge_from(evidence)
                done = attempt.fail(error)
                ctx.status, ctx.error_code = error.to_client().status, error.kind.value
            else:
                attempt.evidence = evidence
                done = attempt.abandon(internal)
                if internal is not None:
                    ctx.status, ctx.error_code = 502, ErrorKind.INTERNAL.value
                else:
                    ctx.status, ctx.error_code = 499, ErrorKind.CLIENT_GONE.value
            self._end(done)
            if ctx.client_disconnected:
                # Stops the upstream call; runs as its own task, outside the cancelled scope.
                _close_later(upstream)
        if batch:
            self._first_token()
            yield b"".join(batch)
        if error is not None:
            tail = encoder.fail(error.to_client(route_name=attempt.route.name))
        elif internal is not None:
            tail = encoder.fail(UpstreamError(ErrorKind.INTERNAL, "internal error while relaying the answer")
                                .to_client())
        else:
            tail = encoder.end(done.cost.usage, ctx.billed)
            if self.after is not None:
                await self.after()
        if self._durable is not None:
            await self._durable()
        yield tail


_closing: set[asyncio.Task[None]] = set()


def _close_later(upstream: ChunkStream) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_quietly(upstream))
    _closing.add(task)  # a reference, so the task is not collected before it runs
    task.add_done_callback(_closing.discard)


async def _quietly(upstream: ChunkStream) -> None:
    with contextlib.suppress(Exception):  # closing a broken upstream must not mask the real outcome
        await upstream.aclose()
