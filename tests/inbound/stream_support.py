"""Chat answers as whole completions and as Baseten-shaped chunk streams, and an SDK-side reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from anthropic._streaming import SSEDecoder
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from service.inbound.messages_request import MessagesRequest
from service.inbound.messages_stream import MessagesStream

CHAT_ID = "chatcmpl-b62418b048d0463fbaef193ee3ba0a8e"
MODEL = "deepseek-ai/DeepSeek-V4-Pro"
_EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


@dataclass(frozen=True)
class Call:
    id: str | None
    name: str
    arguments: str
    pieces: tuple[str, ...]  # how the arguments arrive


@dataclass(frozen=True)
class Answer:
    """One upstream answer, and how its stream is cut into chunks."""

    reasoning: tuple[str, ...]  # reasoning_content deltas
    content: tuple[str, ...]  # content deltas
    calls: tuple[Call, ...]
    finish: str | None
    matched: str | int | None  # vLLM's choice `stop_reason`
    prompt: int
    cached: int | None
    completion: int
    cost: float | int | None
    null_keys: bool  # DeepSeek / gpt-oss style deltas carry explicit nulls; GLM's omit them
    usage_on_every_chunk: bool
    content_after_finish: bool  # the DeepSeek ordering quirk
    repeat_call_ids: bool  # gpt-oss repeats the call id on every fragment

    def usage(self, completion: int, *, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt,
            "completion_tokens": completion,
            "total_tokens": self.prompt + completion,
        }
        if self.cached is not None:
            usage["prompt_tokens_details"] = {"audio_tokens": 0, "cached_tokens": self.cached}
        if final and self.cost is not None:
            usage["cost"] = self.cost
        return usage

    def whole(self) -> dict[str, Any]:
        """The equivalent non-streamed completion."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.content else None,
        }
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.calls
            ]
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self.finish}
        if self.matched is not None:
            choice["stop_reason"] = self.matched
        return {
            "id": CHAT_ID,
            "object": "chat.completion",
            "model": MODEL,
            "choices": [choice],
            "usage": self.usage(self.completion, final=True),
        }

    def chunks(self) -> list[dict[str, Any]]:
        """The stream Baseten would send for this answer (upstreams.md 1.5)."""
        deltas: list[dict[str, Any]] = [{"role": "assistant"}]
        deltas += [{"reasoning_content": piece} for piece in self.reasoning]
        deltas += [{"content": piece} for piece in self.content]
        for position, call in enumerate(self.calls):
            for number, piece in enumerate(call.pieces):
                fragment: dict[str, Any] = {"index": position, "type": "function"}
                if number == 0 or self.repeat_call_ids:
                    fragment["id"] = call.id
                fragment["function"] = {"name": call.name if number == 0 else None, "arguments": piece}
                deltas.append({"tool_calls": [fragment]})
        late: list[dict[str, Any]] = []
        if self.content_after_finish and len(deltas) > 1 and "content" in deltas[-1]:
            late.append(deltas.pop())
        chunks = [self._chunk(delta) for delta in deltas]
        if self.finish is not None:
            finish: dict[str, Any] = {
                "index": 0,
                "delta": self._delta({"reasoning_content": ""}),
                "finish_reason": self.finish,
            }
            if self.matched is not None:
                finish["stop_reason"] = self.matched
            chunks.append(self._wrap([finish]))
        chunks += [self._chunk(delta) for delta in late]
        total = len(chunks)
        for number, chunk in enumerate(chunks):
            if self.usage_on_every_chunk and not (late and number == total - 1):
                chunk["usage"] = self.usage(min(self.completion, number + 1), final=False)
            else:
                chunk["usage"] = None
        chunks.append({**self._wrap([]), "usage": self.usage(self.completion, final=True)})
        return chunks

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        if not self.null_keys:
            return delta
        base: dict[str, Any] = {
            "content": None,
            "function_call": None,
            "tool_calls": None,
            "role": None,
            "refusal": None,
        }
        return {**base, **delta}

    def _chunk(self, delta: dict[str, Any]) -> dict[str, Any]:
        return self._wrap([{"index": 0, "delta": self._delta(delta)}])

    def _wrap(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": CHAT_ID,
            "choices": choices,
            "created": 1780264605,
            "model": MODEL,
            "object": "chat.completion.chunk",
        }


def run_stream(request: MessagesRequest, chunks: list[dict[str, Any]]) -> bytes:
    stream = MessagesStream(request)
    raw = b"".join(stream.feed(chunk) for chunk in chunks) + stream.close()
    assert stream.done
    return raw


def events(raw: bytes) -> list[dict[str, Any]]:
    """Decode the SSE bytes with the anthropic SDK's decoder; check framing and each event's schema."""
    assert raw.endswith(b"\n\n") and b"\r" not in raw
    out = []
    for sse in SSEDecoder().iter_bytes(iter([raw])):
        data = json.loads(sse.data)
        assert sse.event == data["type"], (sse.event, data)
        if sse.event not in ("ping", "error"):
            _EVENTS.validate_python(data)  # strict: required fields, literal types
        out.append(data)
    return out


def accumulate(raw: bytes) -> dict[str, Any]:
    """The message the anthropic SDK's own accumulator builds from the stream."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events(raw):
        if event["type"] == "ping":
            continue
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    assert snapshot is not None
    built: dict[str, Any] = snapshot.model_dump(exclude_none=True)
    return built


def comparable(message: dict[str, Any]) -> dict[str, Any]:
    """What a client reads from a message: blocks, stop, token counts."""
    blocks = []
    for block in message["content"]:
        keys = {
            "text": ("text",),
            "thinking": ("thinking", "signature"),
            "tool_use": ("id", "name", "input"),
        }[block["type"]]
        blocks.append({"type": block["type"], **{key: block[key] for key in keys}})
    usage = message["usage"]
    return {
        "id": message["id"],
        "model": message["model"],
        "content": blocks,
        "stop_reason": message["stop_reason"],
        "stop_sequence": message.get("stop_sequence"),
        "usage": {
            key: usage.get(key) for key in ("input_tokens", "output_tokens", "cache_read_input_tokens")
        },
    }
