"""Who is calling: the authenticated key, its tenant's policy and every budget that binds it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

LEVELS = ("tenant", "project", "key")


@dataclass(frozen=True, slots=True)
class BudgetRule:
    id: uuid.UUID
    key_id: uuid.UUID | None  # set: this key's budget
    period: str  # day | month | rolling
    limit: Decimal  # billed USD
    hard: bool
    project_id: uuid.UUID | None = None  # set: the key's project's budget
    window_hours: int | None = None  # a rolling budget's window

    @property
    def level(self) -> str:
        """Which level it binds: the key, its project, or (neither set) the whole tenant."""
        if self.key_id is not None:
            return "key"
        return "project" if self.project_id is not None else "tenant"

    def describe(self) -> str:
        """`the project's rolling 24-hour $5` and the like, for refusals."""
        if self.period == "rolling":
            span = f"rolling {self.window_hours}-hour"
        else:
            span = "daily" if self.period == "day" else "monthly"
        return f"the {self.level}'s {span} ${self.limit}"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: uuid.UUID
    tenant_name: str
    key_id: uuid.UUID
    key_prefix: str
    markup: Decimal
    # The models the tenant, the key's project and the key all allow (None: any).
    allowed_models: frozenset[str] | None
    denied_front_ends: frozenset[str]
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    # Loaded with the key, so a request is never admitted without knowing its budgets.
    budgets: tuple[BudgetRule, ...] = ()
    project_id: uuid.UUID | None = None
    # When the secret presented stops working: the key's expiry, or a rotated secret's grace end.
    expires_at: datetime | None = None
