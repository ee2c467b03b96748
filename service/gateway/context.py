"""Per-request state that follows a chat request through planning, attempts and metering."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from service.auth.principal import Principal

if TYPE_CHECKING:
    from service.metering.admission import Admission


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RequestContext:
    request_id: str
    principal: Principal
    requested_model: str
    stream: bool
    api: str = "chat"  # the inbound API the client spoke: chat | messages | responses
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime = field(default_factory=utcnow)
    upstream_seconds: float = 0.0  # time spent waiting on upstreams, for the overhead metric
    attempts: int = 0
    served_model: str | None = None
    route: str | None = None
    front_end: str | None = None
    status: int = 200
    cost: Decimal = Decimal(0)  # provider cost of every attempt so far
    billed: Decimal = Decimal(0)  # what the tenant is billed for them: what it is told
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft: float | None = None
    error_code: str | None = None
    client_disconnected: bool = False
    soft_budget_exceeded: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    admission: Admission | None = None
    # Attribution the client sent (validated and bounded by the inbound layer).
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
