"""Who is calling: the authenticated key and its tenant's policy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key_prefix: str
    markup: Decimal
    allowed_models: frozenset[str] | None
    denied_front_ends: frozenset[str]
    rpm_limit: int | None = None
    tpm_limit: int | None = None
