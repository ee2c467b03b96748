"""Authentication without a database round trip per request, and revocation effective at once.

Keys found once are cached by prefix (hash and principal). Every process listens on a Postgres
channel; revoking a key or changing a tenant sends a notification that evicts the entry on all
of them. A short TTL bounds staleness should a notification ever be missed; on (re)connecting
the listener the cache is cleared, since notifications may have been missed meanwhile. While
the database is unreachable, known keys keep working (nothing can be revoked then).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import asyncpg
import orjson
import structlog

from service.auth.keys import PREFIX_LEN, key_prefix, looks_like_key, matches
from service.auth.principal import BudgetRule, Principal
from service.db.pool import fetchrow_bounded
from service.tasks import cancel_and_wait

log = structlog.get_logger("switchyard.auth")

CHANNEL = "switchyard_auth"
# The key, its tenant and every budget that binds it, in one round trip: budgets changed by the
# admin API or CLI announce the tenant, which evicts these entries everywhere.
_LOOKUP = """
SELECT k.id AS key_id, k.prefix, k.key_hash, k.rpm_limit, k.tpm_limit, k.revoked_at, k.project_id,
       t.id AS tenant_id, t.name, t.status, t.markup, t.allowed_models, t.denied_front_ends,
       COALESCE((SELECT json_agg(json_build_object('id', b.id, 'key_id', b.key_id, 'period', b.period,
                                                   'limit', b.limit_usd::text, 'hard', b.hard))
                 FROM budgets b WHERE b.tenant_id = t.id AND (b.key_id IS NULL OR b.key_id = k.id)),
                '[]') AS budgets
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE k.prefix = $1
"""


def _budget_rules(raw: str) -> tuple[BudgetRule, ...]:
    return tuple(
        BudgetRule(uuid.UUID(b["id"]), uuid.UUID(b["key_id"]) if b["key_id"] else None, b["period"],
                   Decimal(b["limit"]), bool(b["hard"]))
        for b in orjson.loads(raw)
    )


class AuthUnavailable(Exception):
    """A key could not be checked because the database did not answer."""


async def notify_key_changed(conn, prefix: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"key:{prefix}")


async def notify_tenant_changed(conn, tenant_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"tenant:{tenant_id}")


async def notify_prices_changed(conn) -> None:
    """A new price version: every gateway reloads it at once (see Runtime)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "prices")


class AuthCache:
    def __init__(self, pool_getter, *, ttl: float = 30.0, negative_ttl: float = 5.0, clock=time.monotonic) -> None:
        self._pool_getter = pool_getter
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._entries: dict[str, tuple[bytes, Principal, float]] = {}
        self._missing: dict[str, float] = {}
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        # Other per-process caches keyed by tenant or key (budgets) evict on the same notifications.
        self.subscribers: list = []

    async def authenticate(self, key: str) -> Principal | None:
        if not looks_like_key(key):
            return None
        prefix = key_prefix(key)
        now = self._clock()
        entry = self._entries.get(prefix)
        if entry is None or entry[2] < now:
            if self._missing.get(prefix, 0.0) > now:
                return None
            stale = entry
            try:
                entry = await self._load(prefix, now)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, AuthUnavailable) as exc:
                # The database is away: no key can be revoked meanwhile, so a known key stays good;
                # an unknown one cannot be checked, which is not the client's fault.
                if stale is None:
                    raise AuthUnavailable("key lookup failed") from exc
                entry = stale
            if entry is None:
                return None
        stored_hash, principal, _ = entry
        return principal if matches(key, stored_hash) else None

    async def _load(self, prefix: str, now: float):
        pool = self._pool_getter()
        if pool is None:
            raise AuthUnavailable("no database connection")
        row = await fetchrow_bounded(pool, _LOOKUP, prefix)
        if row is None or row["revoked_at"] is not None or row["status"] != "active":
            self._missing[prefix] = now + self._negative_ttl
            self._entries.pop(prefix, None)
            if len(self._missing) > 10_000:
                self._missing = {p: t for p, t in self._missing.items() if t > now}
            return None
        allowed = row["allowed_models"]
        principal = Principal(
            tenant_id=row["tenant_id"],
            tenant_name=row["name"],
            key_id=row["key_id"],
            key_prefix=row["prefix"],
            markup=row["markup"],
            allowed_models=frozenset(allowed) if allowed is not None else None,
            denied_front_ends=frozenset(row["denied_front_ends"] or ()),
            rpm_limit=row["rpm_limit"],
            tpm_limit=row["tpm_limit"],
            budgets=_budget_rules(row["budgets"]),
            project_id=row["project_id"],
        )
        entry = (bytes(row["key_hash"]), principal, now + self._ttl)
        self._entries[prefix] = entry
        return entry

    def evict(self, payload: str) -> None:
        for subscriber in self.subscribers:
            subscriber(payload)
        kind, _, value = payload.partition(":")
        if kind == "prices":
            return  # not about keys: the runtime's subscriber reloads the prices
        if kind == "key":
            self._entries.pop(value[:PREFIX_LEN], None)
            self._missing.pop(value[:PREFIX_LEN], None)
        elif kind == "tenant":
            for prefix, (_, principal, _) in list(self._entries.items()):
                if str(principal.tenant_id) == value:
                    self._entries.pop(prefix, None)
            # A re-enabled tenant's keys may sit in the refusal cache, which knows no tenant.
            self._missing.clear()
        else:
            self.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._missing.clear()

    async def start(self, database_url: str) -> None:
        self._task = asyncio.create_task(self._listen(database_url), name="auth-listener")

    async def _listen(self, database_url: str) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                conn = await asyncpg.connect(database_url, timeout=5)
                self._listener = conn
                await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: self.evict(payload))
                # Anything could have changed while we were not listening.
                self.clear()
                backoff = 0.5
                while not self._stopping and not conn.is_closed():
                    await asyncio.sleep(1.0)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("auth_listener_down", error=type(exc).__name__)
            finally:
                if self._listener is not None and not self._listener.is_closed():
                    await self._listener.close()
                self._listener = None
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._task)
