"""The contract every front-end adapter fulfils, and the one usage shape they all report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from service.catalog.model import Route


class CostSource:
    COMPUTED = "computed"  # tokens x the catalog's per-token prices
    RECEIPT = "receipt"  # the marketplace's own charge: xpay's receipt, Orthogonal's envelope price
    QUOTE = "quote"  # a price quoted before the call
    ESTIMATED = "estimated"  # no usage reported: estimated from the request (the row is flagged)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, raw: Any) -> Usage | None:
        """Read an OpenAI-style usage object; None when absent or not an object."""
        if not isinstance(raw, dict):
            return None
        prompt_details = raw.get("prompt_tokens_details") or {}
        completion_details = raw.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=_int(raw.get("prompt_tokens")),
            completion_tokens=_int(raw.get("completion_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else 0),
            cached_tokens=_int(prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0),
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(slots=True)
class AttemptResult:
    """What one finished upstream attempt reports for metering and for the client's usage.cost."""

    usage: Usage | None = None
    cost_usd: Decimal | None = None
    cost_source: str = CostSource.COMPUTED
    upstream_request_id: str | None = None
    # A marketplace's prepaid balance after this call, when its receipt says so.
    balance_usd: Decimal | None = None
    finish_reason: str | None = None


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) answer: the upstream body in OpenAI's shape, and what it cost."""

    body: dict[str, Any]
    result: AttemptResult
    headers: dict[str, str] = field(default_factory=dict)


class ChunkStream(Protocol):
    """A streamed answer, as parsed OpenAI chunks.

    Iterating yields chunk dicts until the upstream's `[DONE]`. Errors after the first chunk raise
    UpstreamError. `result` holds the usage and cost known so far (cumulative, so a stream cut short
    still reports what was generated). `aclose()` cancels the upstream call.
    """

    result: AttemptResult

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class Adapter(Protocol):
    front_end: str

    async def complete(self, route: Route, body: dict[str, Any]) -> Completion:
        """Call the upstream without streaming; raise UpstreamError on any failure."""
        ...

    async def stream(self, route: Route, body: dict[str, Any]) -> ChunkStream:
        """Open a streamed call. Raises UpstreamError if it fails before the first chunk."""
        ...

    async def aclose(self) -> None: ...
