"""One usage row per upstream attempt: the unit everything billed is summed from."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

# usage_events columns, in COPY order; record() returns a row in this order.
USAGE_COLUMNS = (
    "request_id", "attempt", "tenant_id", "key_id", "requested_model", "served_model", "front_end",
    "route", "status", "error_code", "http_status", "stream", "client_disconnected",
    "prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens",
    "provider_cost_usd", "billed_usd", "price_version", "cost_source", "estimated",
    "upstream_request_id", "started_at", "first_token_at", "ended_at", "direct_billed_usd", "api",
    "project_id", "end_user", "tags", "metadata",
)


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    attempt: int
    tenant_id: uuid.UUID
    key_id: uuid.UUID | None
    requested_model: str
    served_model: str
    front_end: str
    route: str
    status: str  # ok | error | cancelled (the client went away)
    error_code: str | None
    http_status: int | None
    stream: bool
    client_disconnected: bool
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    provider_cost_usd: Decimal
    billed_usd: Decimal
    price_version: str
    cost_source: str
    estimated: bool
    upstream_request_id: str | None
    started_at: datetime
    first_token_at: datetime | None
    ended_at: datetime
    # What Baseten direct would have billed for the same model and tokens (savings baseline).
    direct_billed_usd: Decimal | None = None
    api: str = "chat"  # the inbound API the client spoke: chat | messages | responses
    # Attribution: the key's project, the end user and tags the client named, its metadata pairs.
    project_id: uuid.UUID | None = None
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] | None = None

    def record(self) -> tuple[object, ...]:
        """The row in the ledger's column order (USAGE_COLUMNS)."""
        return (
            self.request_id, self.attempt, self.tenant_id, self.key_id, self.requested_model,
            self.served_model, self.front_end, self.route, self.status, self.error_code,
            self.http_status, self.stream, self.client_disconnected, self.prompt_tokens,
            self.cached_tokens, self.completion_tokens, self.reasoning_tokens,
            self.provider_cost_usd, self.billed_usd, self.price_version, self.cost_source,
            self.estimated, self.upstream_request_id, self.started_at, self.first_token_at,
            self.ended_at, self.direct_billed_usd, self.api, self.project_id, self.end_user,
            list(self.tags), orjson.dumps(self.metadata).decode() if self.metadata is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, (uuid.UUID, Decimal)):
                out[k] = str(v)
            elif isinstance(v, datetime):
                out[k] = v.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UsageEvent:
        d = dict(data)
        d["tenant_id"] = uuid.UUID(d["tenant_id"])
        d["project_id"] = uuid.UUID(d["project_id"]) if d.get("project_id") else None
        d["tags"] = tuple(d.get("tags") or ())
        d["key_id"] = uuid.UUID(d["key_id"]) if d.get("key_id") else None
        for k in ("provider_cost_usd", "billed_usd", "direct_billed_usd"):
            if d.get(k) is not None:
                d[k] = Decimal(d[k])
        for k in ("started_at", "first_token_at", "ended_at"):
            d[k] = datetime.fromisoformat(d[k]) if d.get(k) else None
        return cls(**d)
