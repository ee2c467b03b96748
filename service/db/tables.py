"""Table definitions (SQLModel) that Alembic's migrations create; runtime queries use asyncpg.

Money is NUMERIC(20,10): exact, and wide enough for a year of a large tenant at
sub-micro-dollar per-token prices. The ledger (usage_events) is partitioned by month in the
migration itself, which SQLModel cannot express; its columns are declared here for reference.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Numeric, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MONEY = Numeric(20, 10)


def _now_column() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    name: str = Field(sa_column=Column(String, nullable=False, unique=True))
    status: str = Field(default="active", sa_column=Column(String, nullable=False, server_default="active"))
    # Fraction added to provider cost to get the billed amount: 0.2 bills cost x 1.2.
    markup: Decimal = Field(sa_column=Column(Numeric(12, 6), nullable=False, server_default="0"))
    allowed_models: list[str] | None = Field(default=None, sa_column=Column(ARRAY(String), nullable=True))
    denied_front_ends: list[str] = Field(sa_column=Column(ARRAY(String), nullable=False, server_default="{}"))
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


class Project(SQLModel, table=True):
    """Between a tenant and its keys: attribution, a model allow-list and budgets of its own."""

    __tablename__ = "projects"
    id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id")
    name: str  # unique within the tenant
    allowed_models: list[str] | None = Field(default=None, sa_column=Column(ARRAY(String), nullable=True))
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    project_id: uuid.UUID | None = Field(default=None, foreign_key="projects.id", index=True)
    # The first characters of the key, stored in clear so a key can be found and listed.
    prefix: str = Field(sa_column=Column(String, nullable=False, unique=True))
    key_hash: bytes
    name: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    allowed_models: list[str] | None = Field(default=None, sa_column=Column(ARRAY(String), nullable=True))
    metadata_: dict[str, str] | None = Field(default=None, sa_column=Column("metadata", JSONB, nullable=True))
    created_at: datetime = Field(sa_column=_now_column())
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    rotated_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # The secret a rotation replaced, good until previous_expires_at (the grace period).
    previous_prefix: str | None = None
    previous_key_hash: bytes | None = None
    previous_expires_at: datetime | None = Field(default=None,
                                                 sa_column=Column(DateTime(timezone=True), nullable=True))


class Budget(SQLModel, table=True):
    __tablename__ = "budgets"
    id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    # Neither set: the whole tenant; one set: that project's, or that key's.
    project_id: uuid.UUID | None = Field(default=None, foreign_key="projects.id")
    key_id: uuid.UUID | None = Field(default=None, foreign_key="api_keys.id")
    period: str  # day | month (UTC) | rolling
    window_hours: int | None = None  # a rolling budget's window
    limit_usd: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    hard: bool = True
    created_at: datetime = Field(sa_column=_now_column())


class QuotaCounter(SQLModel, table=True):
    """What was used of one limit (a budget, a key's requests or tokens a minute) in one period."""

    __tablename__ = "quota_counters"
    scope: str = Field(primary_key=True)
    period_start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    used: Decimal = Field(sa_column=Column(MONEY, nullable=False, server_default="0"))


class QuotaLease(SQLModel, table=True):
    """A slice of a limit held by one gateway process; expires unless renewed."""

    __tablename__ = "quota_leases"
    scope: str = Field(primary_key=True)
    period_start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    holder: str = Field(primary_key=True)
    granted: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class UsageDaily(SQLModel, table=True):
    """Sums of the ledger per day, tenant, project, key, model and front end (nil UUID: none)."""

    __tablename__ = "usage_daily"
    day: date = Field(primary_key=True)
    tenant_id: uuid.UUID = Field(primary_key=True)
    project_id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(primary_key=True)
    served_model: str = Field(primary_key=True)
    front_end: str = Field(primary_key=True)
    requests: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    attempts: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    prompt_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    cached_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    completion_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    reasoning_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    provider_cost_usd: Decimal = Field(sa_column=Column(MONEY, nullable=False, server_default="0"))
    billed_usd: Decimal = Field(sa_column=Column(MONEY, nullable=False, server_default="0"))
    direct_billed_usd: Decimal = Field(sa_column=Column(MONEY, nullable=False, server_default="0"))


class UsageDailyTag(SQLModel, table=True):
    """The same sums per tag: a row with several tags counts under each ('' for untagged rows)."""

    __tablename__ = "usage_daily_tags"
    day: date = Field(primary_key=True)
    tenant_id: uuid.UUID = Field(primary_key=True)
    tag: str = Field(primary_key=True)
    project_id: uuid.UUID = Field(primary_key=True)
    key_id: uuid.UUID = Field(primary_key=True)
    served_model: str = Field(primary_key=True)
    front_end: str = Field(primary_key=True)
    requests: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    attempts: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    prompt_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    cached_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    completion_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    reasoning_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, server_default="0"))
    provider_cost_usd: Decimal = Field(sa_column=Column(MONEY, nullable=False, server_default="0"))
    billed_usd: Decimal = Field(sa_column=Column(MONEY, nullable=False, server_default="0"))
    direct_billed_usd: Decimal = Field(sa_column=Column(MONEY, nullable=False, server_default="0"))


class PriceVersion(SQLModel, table=True):
    __tablename__ = "price_versions"
    version: str = Field(primary_key=True)
    effective_from: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    catalog: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(sa_column=_now_column())


# The ledger's columns, in COPY order, live beside the event they store (no ORM on the hot path).
from service.metering.events import USAGE_COLUMNS  # noqa: E402,F401
