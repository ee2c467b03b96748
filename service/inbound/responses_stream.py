"""Chat Completions chunks as a Responses API event stream.

`ResponsesStream` is fed the chunks of one streamed chat answer in Baseten's shape (a role chunk,
`reasoning_content` deltas, `content` deltas, tool-call chunks whose first carries the id and name
and whose later ones carry argument fragments, the finish chunk, possibly a content chunk after
it, and the usage-only chunk with `choices: []`) and returns the SSE bytes to send, framed as
OpenAI frames them: `event: <type>\\ndata: <json>\\n\\n`, no `[DONE]`.

Items open as their first delta arrives. Reasoning and the message close when a later item
starts; function calls stay open until the end so fragments of parallel calls may interleave.
The finish reason is not trusted to end anything (Baseten can send content after it): items close
in `close()`, which ends with `response.completed` or `response.incomplete` carrying the same
Response `chat_to_response` gives for the whole answer. `error()` ends a stream that failed after
it started with `response.failed`, which Codex CLI and the Agents SDK both treat as the end.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.inbound.responses_output import (
    Item,
    final_status,
    function_call_item,
    item_id,
    mark_cut,
    message_item,
    reasoning_item,
    response_envelope,
    responses_usage,
    text_part,
)
from service.inbound.responses_request import ResponsesRequest

# The gateway's error codes as the Responses API's own, which clients act on: Codex CLI backs off
# on rate_limit_exceeded and stops on context_length_exceeded and insufficient_quota.
FAILURE_CODES = {
    "upstream_rate_limited": "rate_limit_exceeded",
    "rate_limited": "rate_limit_exceeded",
    "rate_limit_exceeded": "rate_limit_exceeded",
    "context_length_exceeded": "context_length_exceeded",
    "insufficient_quota": "insufficient_quota",
    "budget_exceeded": "insufficient_quota",
}


def sse_event(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _Open:
    """One output item while it streams."""

    __slots__ = ("call_id", "index", "kind", "name", "open", "text")

    def __init__(self, kind: str, index: int, *, call_id: str = "", name: str = "") -> None:
        self.kind = kind
        self.index = index
        self.text = ""  # reasoning or message text, or the call's arguments
        self.call_id = call_id
        self.name = name
        self.open = True


class ResponsesStream:
    """Translate one chat stream into Responses events; see the module docstring."""

    def __init__(self, request: ResponsesRequest, *, response_id: str, created_at: int) -> None:
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self.model = request.model
        self.response: dict[str, Any] | None = None  # the final Response once closed or failed
        self._sequence = 0
        self._started = False
        self._items: list[_Open] = []
        self._reasoning: _Open | None = None
        self._message: _Open | None = None
        self._calls: dict[int, _Open] = {}
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._out: list[bytes] = []

    # The caller's three entry points.

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self.response is not None:
            return b""
        model = chunk.get("model")
        if isinstance(model, str) and model:
            self.model = model
        self._start()
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage  # cumulative: the last one seen is the answer's
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else None
        if choice is not None:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self._reasoning_delta(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._text_delta(content)
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    self._call_delta(call)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self._finish_reason = finish
        return self._flush()

    def close(self) -> bytes:
        """End of the chat stream: close every item and send the final Response."""
        if self.response is not None:
            return b""
        self._start()
        if not self._items:
            self._open_message()
        status = final_status(self._finish_reason)
        last = self._items[-1]
        for item in self._items:
            if item.open:
                self._close(item, "incomplete" if status == "incomplete" and item is last else "completed")
        output = [self._final(item) for item in self._items]
        mark_cut(output, status)
        self.response = self._envelope(status, output)
        self._emit(
            "response.completed" if status == "completed" else "response.incomplete", response=self.response
        )
        return self._flush()

    def error(self, message: str, code: str) -> bytes:
        """A failure after the stream started: `response.failed` with what was produced so far."""
        if self.response is not None:
            return b""
        self._start()
        output = [self._final(item, "incomplete" if item.open else "completed") for item in self._items]
        failure = {"code": FAILURE_CODES.get(code, "server_error"), "message": message}
        self.response = self._envelope("failed", output, error=failure)
        self._emit("response.failed", response=self.response)
        return self._flush()

    # Events.

    def _emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        self._out.append(sse_event(event))

    def _flush(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _envelope(self, status: str, output: list[Item], error: Item | None = None) -> dict[str, Any]:
        return response_envelope(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            output=output,
            usage=responses_usage(self._usage),
            finish_reason=self._finish_reason,
            error=error,
        )

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        initial = response_envelope(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            status="in_progress",
            output=[],
            usage=None,
        )
        self._emit("response.created", response=initial)
        self._emit("response.in_progress", response=initial)

    # Items opening, growing and closing.

    def _add(self, item: _Open, first: Item) -> None:
        self._items.append(item)
        self._emit("response.output_item.added", output_index=item.index, item=first)

    def _close_earlier_text(self) -> None:
        """A new item starts: the reasoning and message before it are finished."""
        for item in (self._reasoning, self._message):
            if item is not None:
                self._close(item, "completed")
        self._reasoning = self._message = None

    def _reasoning_delta(self, text: str) -> None:
        item = self._reasoning
        if item is None:
            self._close_earlier_text()
            item = self._reasoning = _Open("reasoning", len(self._items))
            first = reasoning_item(self.response_id, item.index, "")
            first["summary"] = []
            self._add(item, first)
            self._emit(
                "response.reasoning_summary_part.added",
                item_id=first["id"],
                output_index=item.index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        item.text += text
        self._emit(
            "response.reasoning_summary_text.delta",
            item_id=item_id(self.response_id, "rs", item.index),
            output_index=item.index,
            summary_index=0,
            delta=text,
        )

    def _open_message(self) -> _Open:
        self._close_earlier_text()
        item = self._message = _Open("message", len(self._items))
        first = message_item(self.response_id, item.index, "", "in_progress")
        first["content"] = []
        self._add(item, first)
        self._emit(
            "response.content_part.added",
            item_id=first["id"],
            output_index=item.index,
            content_index=0,
            part=text_part(""),
        )
        return item

    def _text_delta(self, text: str) -> None:
        item = self._message or self._open_message()
        item.text += text
        self._emit(
            "response.output_text.delta",
            item_id=item_id(self.response_id, "msg", item.index),
            output_index=item.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_delta(self, call: dict[str, Any]) -> None:
        position = call.get("index")
        key = position if type(position) is int else len(self._calls)
        function = call.get("function") or {}
        name = function.get("name")
        item = self._calls.get(key)
        if item is None:
            self._close_earlier_text()
            index = len(self._items)
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = item_id(self.response_id, "call", index)
            item = self._calls[key] = _Open(
                "function_call", index, call_id=call_id, name=name if isinstance(name, str) else ""
            )
            self._add(item, self._final(item, "in_progress"))
        elif isinstance(name, str) and name and not item.name:
            item.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text += arguments
            self._emit(
                "response.function_call_arguments.delta",
                item_id=item_id(self.response_id, "fc", item.index),
                output_index=item.index,
                delta=arguments,
            )

    def _close(self, item: _Open, status: str) -> None:
        if not item.open:
            return
        item.open = False
        done = self._final(item, status)
        if item.kind == "reasoning":
            part = done["summary"][0]
            common: dict[str, Any] = {"item_id": done["id"], "output_index": item.index, "summary_index": 0}
            self._emit("response.reasoning_summary_text.done", **common, text=item.text)
            self._emit("response.reasoning_summary_part.done", **common, part=part)
        elif item.kind == "message":
            common = {"item_id": done["id"], "output_index": item.index, "content_index": 0}
            self._emit("response.output_text.done", **common, text=item.text, logprobs=[])
            self._emit("response.content_part.done", **common, part=done["content"][0])
        else:
            self._emit(
                "response.function_call_arguments.done",
                item_id=done["id"],
                output_index=item.index,
                name=done["name"],
                arguments=item.text,
            )
        self._emit("response.output_item.done", output_index=item.index, item=done)

    def _final(self, item: _Open, status: str = "completed") -> Item:
        if item.kind == "reasoning":
            return reasoning_item(self.response_id, item.index, item.text)
        if item.kind == "message":
            return message_item(self.response_id, item.index, item.text, status)
        return function_call_item(
            self.request, self.response_id, item.index, item.call_id, item.name, item.text, status
        )
