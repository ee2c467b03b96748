"""Shapes upstream chunks for the client: usage only when asked for, and the cost added."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def add_cost(usage: dict[str, Any], cost: Decimal | None) -> dict[str, Any]:
    if cost is not None:
        # A JSON number, as OpenRouter's clients expect; the exact decimal is in the ledger and header.
        usage["cost"] = float(cost)
    return usage


class ChunkShaper:
    """OpenAI semantics on top of Baseten's: without include_usage the client sees no usage;
    with it, usage rides only on the final usage chunk, unless the client asked for
    continuous_usage_stats."""

    __slots__ = ("include_usage", "continuous", "usage_chunk")

    def __init__(self, body: dict[str, Any]) -> None:
        options = body.get("stream_options") or {}
        self.include_usage = bool(options.get("include_usage"))
        self.continuous = bool(options.get("continuous_usage_stats")) and self.include_usage
        self.usage_chunk: dict[str, Any] | None = None

    def shape(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk to send now, or None to hold it back."""
        if not chunk.get("choices"):
            if "usage" in chunk and chunk["usage"] is not None:
                # The usage-only chunk: sent last, once the final cost is known.
                self.usage_chunk = chunk
                return None
            if not chunk.get("choices") and "choices" in chunk:
                return None
        if not self.continuous and "usage" in chunk:
            if self.include_usage:
                chunk["usage"] = None
            else:
                del chunk["usage"]
        return chunk

    def final_usage_chunk(self, cost: Decimal | None, fallback: dict[str, Any] | None) -> dict[str, Any] | None:
        if not self.include_usage:
            return None
        chunk = self.usage_chunk or fallback
        if chunk is None:
            return None
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            add_cost(usage, cost)
        return chunk
