"""A usage row for the journal's tests: every field set, any of them replaceable."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from service.metering.events import UsageEvent


def event(tenant: uuid.UUID | None = None, **fields: object) -> UsageEvent:
    started = datetime.now(UTC) - timedelta(seconds=2)
    model = "openai/gpt-oss-120b"
    base = UsageEvent(
        request_id=f"req_{uuid.uuid4().hex}", attempt=1, tenant_id=tenant or uuid.uuid4(), key_id=uuid.uuid4(),
        requested_model=model, served_model=model, front_end="baseten", route=f"baseten:{model}", status="ok",
        error_code=None, http_status=None, stream=False, client_disconnected=False, prompt_tokens=12,
        cached_tokens=0, completion_tokens=30, reasoning_tokens=0, provider_cost_usd=Decimal("0.0000123400"),
        billed_usd=Decimal("0.0000150000"), price_version="test", cost_source="computed", estimated=False,
        upstream_request_id=None, started_at=started, first_token_at=started + timedelta(milliseconds=300),
        ended_at=started + timedelta(seconds=1), direct_billed_usd=Decimal("0.0000200000"), tags=("a", "b"),
        metadata={"k": "v"}, end_user="u1")
    return dataclasses.replace(base, **fields)
