"""The contract every front-end adapter fulfils, and the evidence of what a call consumed.

Adapters translate wire formats and report evidence (usage, a marketplace's receipt or envelope
price); they never decide money. The cost of record is decided in `service.metering.pricing`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from service.catalog.model import Route


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, raw: object) -> Usage | None:
        """Read an OpenAI-style usage object; None when absent or not an object."""
        if not isinstance(raw, dict):
            return None
        prompt_details = raw.get("prompt_tokens_details")
        completion_details = raw.get("completion_tokens_details")
        return cls(
            prompt_tokens=_int(raw.get("prompt_tokens")),
            completion_tokens=_int(raw.get("completion_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens"))
            if isinstance(completion_details, dict) else 0,
            cached_tokens=_int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0,
        )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(slots=True)
class Evidence:
    """What one upstream call reported about itself, as read off the wire and nothing more.

    `receipt_usd` is a charge the marketplace stated (xpay's `Cost: $0.01` receipt);
    `envelope_usd` is a price field in dollars (Orthogonal's `price`); `envelope_cents` is
    Orthogonal's `priceCents` as sent, whose unit its docs contradict (pricing decides what it is
    worth, if anything)."""

    usage: Usage | None = None
    receipt_usd: Decimal | None = None
    envelope_usd: Decimal | None = None
    envelope_cents: Decimal | None = None
    balance_usd: Decimal | None = None
    upstream_request_id: str | None = None
    finish_reason: str | None = None

    def merge_from(self, other: Evidence) -> None:
        """Fill what this evidence lacks from `other` (a stream's running evidence after a failure)."""
        for name in ("usage", "receipt_usd", "envelope_usd", "envelope_cents", "balance_usd",
                     "upstream_request_id", "finish_reason"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) answer: the upstream body in OpenAI's shape, and its evidence."""

    body: dict[str, Any]
    evidence: Evidence
    headers: dict[str, str] = field(default_factory=dict)


class ChunkStream(Protocol):
    """A streamed answer, as parsed OpenAI chunks.

    Iterating yields chunk dicts until the upstream's end. Errors after the first chunk raise
    UpstreamError. `evidence` holds what is known so far (cumulative usage, so a stream cut short
    still reports what was generated). `aclose()` cancels the upstream call.
    """

    @property
    def evidence(self) -> Evidence: ...

    def buffered(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class Adapter(Protocol):
    front_end: str

    async def complete(self, route: Route, body: dict[str, Any], *, key: int = 0) -> Completion:
        """Call the upstream without streaming; raise UpstreamError on any failure. `key` is which
        of the front end's API keys the call's capacity slot came from (a pool, e.g. xpay's)."""
        ...

    async def stream(self, route: Route, body: dict[str, Any], *, key: int = 0) -> ChunkStream:
        """Open a streamed call. Raises UpstreamError if it fails before the first chunk."""
        ...

    async def aclose(self) -> None: ...


class Quoter(Protocol):
    """A front end that can price a call before making it (Orthogonal's dry run)."""

    async def quote(self, route: Route, body: dict[str, Any]) -> Evidence | None:
        """The price fields the marketplace quotes for this call, or None when it cannot say."""
        ...
