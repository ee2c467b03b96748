"""A stream of Chat Completions chunks -> Anthropic's Messages event stream (SSE bytes).

One `MessagesStream` per answer: `feed(chunk)` for each chunk in order, then `close()` when the
upstream stream ends, or `error(...)` when it fails after the response began; `ping()` keeps a
quiet connection open. Nothing is emitted after `message_stop` or an `error` event.

Events: `message_start` on the first chunk; one content block at a time (`thinking`, `text`,
`tool_use`) with consecutive indexes; `message_delta` (stop reason, usage with the gateway's
`cost`) and `message_stop` only at `close()`, because Baseten may send content after the chunk
that carries `finish_reason` (upstreams.md 1.5).

Tool input is sent as one `input_json_delta` when the call's block ends, holding the compact JSON of
the parsed arguments: the chat stream's fragments are not guaranteed to form a JSON object
(truncated by max_tokens, or malformed), and a client's accumulator fails on invalid JSON, so the
input is only sent once it is known to parse (else `{}`, as `chat_to_message` does). Fragments are
matched to calls by their `index`; a fragment for a call whose block has already ended (never seen
from vLLM, which streams calls one after another) is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from service.inbound.messages_request import MessagesRequest
from service.inbound.messages_response import (
    anthropic_usage,
    content_text,
    message_id,
    reasoning_text,
    stop_reason,
    tool_input_json,
    tool_use_id,
)

__all__ = ["MessagesStream", "sse_event"]


def sse_event(kind: str, payload: Mapping[str, Any]) -> bytes:
    """One SSE event in Anthropic's framing: `event: <type>\\ndata: <json>\\n\\n`."""
    try:
        data = orjson.dumps(payload)
    except TypeError:  # lone surrogates or huge integers: the standard encoder escapes them
        data = json.dumps(payload, separators=(",", ":")).encode()
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


class _Tool:
    __slots__ = ("arguments", "block", "ended", "id", "name", "position")

    def __init__(self, position: int) -> None:
        self.position = position
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []
        self.block: int | None = None  # its content block index, once started
        self.ended = False


class _Open:
    __slots__ = ("index", "kind", "tool")

    def __init__(self, kind: str, index: int, tool: _Tool | None = None) -> None:
        self.kind = kind
        self.index = index
        self.tool = tool


class MessagesStream:
    """Translates one upstream chunk stream into the Anthropic events answering `request`."""

    def __init__(self, request: MessagesRequest) -> None:
        self._request = request
        self._started = False
        self._done = False
        self._id = ""
        self._next_index = 0
        self._open: _Open | None = None
        self._tools: dict[int, _Tool] = {}
        self._tool_blocks = 0
        self._finish: object = None
        self._matched: object = None
        self._usage: Mapping[str, Any] | None = None

    @property
    def done(self) -> bool:
        """True once `message_stop` or an `error` event has been emitted."""
        return self._done

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        """The events one Chat Completions chunk yields (possibly none)."""
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self._start(chunk))
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._usage = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                self._delta(delta, out)
            finish = choice.get("finish_reason")
            if finish is not None:
                self._finish = finish
                self._matched = choice.get("stop_reason")
        return b"".join(out)

    def close(self) -> bytes:
        """The end of the answer: open blocks closed, `message_delta`, `message_stop`."""
        if self._done:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self._start({}))
        for position in sorted(self._tools):
            tool = self._tools[position]
            if tool.block is None and not tool.ended:
                tool.name = tool.name or ""
                self._begin_tool(tool, out)
        self._end_block(out)
        reason, sequence = stop_reason(self._finish, self._matched, self._tool_blocks > 0, self._request)
        out.append(
            sse_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": self._final_usage(),
                },
            )
        )
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        self._done = True
        return b"".join(out)

    def error(self, message: str, type: str = "api_error") -> bytes:
        """An `error` event for a failure after the response began; it ends the stream."""
        if self._done:
            return b""
        self._done = True
        return sse_event("error", {"type": "error", "error": {"type": type, "message": message}})

    def ping(self) -> bytes:
        """A `ping` event (clients skip it), or nothing once the stream has ended."""
        if self._done:
            return b""
        return sse_event("ping", {"type": "ping"})

    def _start(self, chunk: Mapping[str, Any]) -> bytes:
        self._started = True
        self._id = message_id(chunk.get("id"))
        model = chunk.get("model")
        usage = anthropic_usage(chunk.get("usage"))
        usage.pop("cost", None)  # the cost of record is only known at the end
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": model if isinstance(model, str) and model else self._request.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return sse_event("message_start", {"type": "message_start", "message": message})

    def _final_usage(self) -> dict[str, Any]:
        if self._usage is None:
            return {"output_tokens": 0}
        usage = anthropic_usage(self._usage)
        out: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
        if "prompt_tokens" in self._usage:
            out["input_tokens"] = usage["input_tokens"]
        for key in ("cache_read_input_tokens", "cost"):
            if key in usage:
                out[key] = usage[key]
        return out

    def _delta(self, delta: Mapping[str, Any], out: list[bytes]) -> None:
        thinking = reasoning_text(delta)
        if thinking:
            self._text("thinking", {"type": "thinking_delta", "thinking": thinking}, out)
        text = content_text(delta)
        if text:
            self._text("text", {"type": "text_delta", "text": text}, out)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, Mapping):
                self._tool_fragment(call, out)

    def _text(self, kind: str, delta: dict[str, Any], out: list[bytes]) -> None:
        if self._open is not None and self._open.kind == kind:
            index = self._open.index
        else:
            self._end_block(out)
            block: dict[str, Any] = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
            )
            index = self._begin(kind, block, out)
        out.append(
            sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )

    def _tool_fragment(self, call: Mapping[str, Any], out: list[bytes]) -> None:
        tool = self._tool_for(call)
        if tool.ended:
            return
        call_id = call.get("id")
        if tool.id is None and isinstance(call_id, str) and call_id:
            tool.id = call_id
        function = call.get("function")
        if isinstance(function, Mapping):
            name = function.get("name")
            if tool.name is None and isinstance(name, str) and name:
                tool.name = name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                tool.arguments.append(arguments)
        if tool.block is None and tool.name is not None:
            self._end_block(out)
            self._begin_tool(tool, out)

    def _tool_for(self, call: Mapping[str, Any]) -> _Tool:
        position = call.get("index")
        if type(position) is not int:
            call_id = call.get("id")
            known = [tool for tool in self._tools.values() if call_id is not None and tool.id == call_id]
            position = known[0].position if known else max(self._tools, default=-1) + 1
        tool = self._tools.get(position)
        if tool is None:
            tool = self._tools[position] = _Tool(position)
        return tool

    def _begin_tool(self, tool: _Tool, out: list[bytes]) -> None:
        block = {
            "type": "tool_use",
            "id": tool_use_id(tool.id, self._id, tool.position),
            "name": self._request.client_tool_name(tool.name or ""),
            "input": {},
        }
        tool.block = self._begin("tool_use", block, out, tool)
        self._tool_blocks += 1

    def _begin(self, kind: str, block: dict[str, Any], out: list[bytes], tool: _Tool | None = None) -> int:
        index = self._next_index
        self._next_index += 1
        self._open = _Open(kind, index, tool)
        out.append(
            sse_event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
            )
        )
        return index

    def _end_block(self, out: list[bytes]) -> None:
        current = self._open
        if current is None:
            return
        self._open = None
        if current.tool is not None:
            current.tool.ended = True
            partial = tool_input_json("".join(current.tool.arguments))
            if partial:
                delta = {"type": "input_json_delta", "partial_json": partial}
                out.append(
                    sse_event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": current.index, "delta": delta},
                    )
                )
        out.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": current.index}))
