"""A whole chat completion replayed as the chunk sequence a native stream would have produced.

Used for front ends that cannot stream (xpay, Orthogonal): the client still gets a real stream,
in the same order a Baseten stream uses, ending with a usage-only chunk.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from service.upstreams.base import Evidence

# Long enough that a reply is a handful of events, short enough that a client sees it arrive in parts.
PIECE_CHARS = 48
_WORD_END = re.compile(r"\S+\s*|\s+")

# Top-level fields a chunk carries when the body has them.
_CHUNK_FIELDS = ("system_fingerprint", "service_tier")


def split_text(text: str, size: int = PIECE_CHARS) -> list[str]:
    """Cut text into pieces of about `size` characters, at word ends where it can."""
    if not text:
        return []
    pieces: list[str] = []
    current = ""
    for match in _WORD_END.finditer(text):
        word = match.group(0)
        while len(word) > size:  # a single run longer than a piece: cut it hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:size])
            word = word[size:]
        if current and len(current) + len(word) > size:
            pieces.append(current)
            current = ""
        current += word
    if current:
        pieces.append(current)
    return pieces


def chunks_from_completion(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Turn an OpenAI `chat.completion` body into its `chat.completion.chunk` sequence.

    Per choice: a role chunk, reasoning deltas, content deltas, tool-call chunks (the first one of each
    call with id, type, name and empty arguments, then its arguments), then a finish chunk. Last, a
    usage-only chunk (`choices: []`) when the body has usage.
    """
    base: dict[str, Any] = {
        "id": body.get("id"),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
    }
    for key in _CHUNK_FIELDS:
        if key in body:
            base[key] = body[key]

    def chunk(choice: dict[str, Any]) -> dict[str, Any]:
        return {**base, "choices": [choice]}

    chunks: list[dict[str, Any]] = []
    choices = body.get("choices")
    for position, choice in enumerate(choices if isinstance(choices, list) else []):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        raw_message = choice.get("message")
        message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
        role = message.get("role") or "assistant"
        chunks.append(chunk({"index": index, "delta": {"role": role}, "finish_reason": None}))
        for key in ("reasoning_content", "reasoning"):
            text = message.get(key)
            if isinstance(text, str) and text:
                chunks.extend(chunk({"index": index, "delta": {key: piece}, "finish_reason": None})
                              for piece in split_text(text))
        content = message.get("content")
        if isinstance(content, str) and content:
            chunks.extend(chunk({"index": index, "delta": {"content": piece}, "finish_reason": None})
                          for piece in split_text(content))
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            chunks.append(chunk({"index": index, "delta": {"refusal": refusal}, "finish_reason": None}))
        tool_calls = message.get("tool_calls")
        for call_index, call in enumerate(tool_calls if isinstance(tool_calls, list) else []):
            if not isinstance(call, dict):
                continue
            raw_function = call.get("function")
            function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
            head = {
                "index": call_index,
                "id": call.get("id"),
                "type": call.get("type", "function"),
                "function": {"name": function.get("name"), "arguments": ""},
            }
            chunks.append(chunk({"index": index, "delta": {"tool_calls": [head]}, "finish_reason": None}))
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                for piece in split_text(arguments):
                    fragment = {"index": call_index, "function": {"arguments": piece}}
                    chunks.append(chunk({"index": index, "delta": {"tool_calls": [fragment]}, "finish_reason": None}))
        finish: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        if "stop_reason" in choice:
            finish["stop_reason"] = choice["stop_reason"]
        if choice.get("logprobs") is not None:
            finish["logprobs"] = choice["logprobs"]
        chunks.append(chunk(finish))
    usage = body.get("usage")
    if isinstance(usage, dict):
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


class ListChunkStream:
    """A ChunkStream over chunks already in hand; its evidence is final from the start."""

    def __init__(self, chunks: list[dict[str, Any]], evidence: Evidence) -> None:
        self._chunks = chunks
        self._evidence = evidence
        self._closed = False
        self._next = 0

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        for index, item in enumerate(self._chunks):
            if self._closed:
                return
            self._next = index + 1
            yield item

    @property
    def evidence(self) -> Evidence:
        return self._evidence

    def buffered(self) -> int:
        """Chunks ready without waiting: the relay sends them to the client in one write."""
        return len(self._chunks) - self._next

    async def aclose(self) -> None:
        self._closed = True
