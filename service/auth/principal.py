"""Who is calling: the authenticated key, its tenant's policy and every budget that binds it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class BudgetRule:
    id: uuid.UUID
    key_id: uuid.UUID | None  # None: the whole tenant
    period: str  # day | month
    limit: Decimal  # billed USD
    hard: bool


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
    # Loaded with the key, so a request is never admitted without knowing its budgets.
    budgets: tuple[BudgetRule, ...] = ()
    project_id: uuid.UUID | None = None
