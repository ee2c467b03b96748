"""Authentication without a database round trip per request, and revocation effective at once.

Keys found once are cached by prefix (hash and principal). Every process listens on a Postgres
channel; revoking, rotating or changing a key, changing a tenant or a project sends a notification
that evicts the entries on all of them. A short TTL bounds staleness should a notification ever be
missed; on (re)connecting the listener the cache is cleared, since notifications may have been
missed meanwhile. While the database is unreachable, known keys keep working (nothing can be
revoked then). Expiry needs no notification: a principal carries when its secret stops working
(the key's expiry, or a rotated-out secret's grace end) and every authentication checks it.

Unknown keys cost no query per request: the listener also keeps the directory of prefixes that
exist, so a prefix outside it is refused at once, and lookups nothing vouches for are rationed
(service.auth.unknown_keys). A lookup that an announcement overtook is answered but not cached.

A rotated key has two secrets for a while, each with its own prefix: both find the same key row
(same id, limits, budgets and attribution), so a client can switch secrets without a gap.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

import asyncpg
import orjson
import structlog

from service.auth.keys import PREFIX_LEN, key_prefix, looks_like_key, matches
from service.auth.principal import BudgetRule, Principal
from service.auth.unknown_keys import KeyDirectory, LookupBudget, RefusalCache
from service.db.pool import Db, fetchrow_bounded
from service.tasks import cancel_and_wait

log = structlog.get_logger("switchyard.auth")

CHANNEL = "switchyard_auth"
# The key (by either secret's prefix), its tenant and project, and every budget that binds it --
# the tenant's, the project's, the key's -- in one round trip. Budgets changed by the admin API or
# CLI announce the tenant, which evicts these entries everywhere.
_LOOKUP = """
SELECT k.id AS key_id, k.prefix, k.key_hash, k.previous_prefix, k.previous_key_hash, k.previous_expires_at,
       k.expires_at, k.rpm_limit, k.tpm_limit, k.revoked_at, k.project_id, k.allowed_models AS key_models,
       p.allowed_models AS project_models,
       t.id AS tenant_id, t.name, t.status, t.markup, t.allowed_models, t.denied_front_ends,
       COALESCE((SELECT json_agg(json_build_object('id', b.id, 'key_id', b.key_id, 'project_id', b.project_id,
                                                   'period', b.period, 'window_hours', b.window_hours,
                                                   'limit', b.limit_usd::text, 'hard', b.hard))
                 FROM budgets b WHERE b.tenant_id = t.id
                   AND ((b.key_id IS NULL AND b.project_id IS NULL) OR b.key_id = k.id
                        OR b.project_id = k.project_id)),
                '[]') AS budgets
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id LEFT JOIN projects p ON p.id = k.project_id
WHERE k.prefix = $1 OR k.previous_prefix = $1
LIMIT 1
"""
# Every prefix a key may authenticate under, for the directory (revoked keys never again).
_PREFIXES = """
SELECT prefix FROM api_keys WHERE revoked_at IS NULL
UNION ALL
SELECT previous_prefix FROM api_keys WHERE revoked_at IS NULL AND previous_prefix IS NOT NULL
"""
# At start, how long serving waits for the directory (lookups are rationed until it is loaded).
_DIRECTORY_WAIT = 2.0
_LOOKUP_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

# The secret's hash, who it authenticates, and until when (monotonic) the entry may be used.
_Entry: TypeAlias = tuple[bytes, Principal, float]


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _budget_rules(raw: str) -> tuple[BudgetRule, ...]:
    return tuple(
        BudgetRule(uuid.UUID(b["id"]), _uuid(b["key_id"]), b["period"], Decimal(b["limit"]), bool(b["hard"]),
                   project_id=_uuid(b["project_id"]), window_hours=b["window_hours"])
        for b in orjson.loads(raw)
    )


def allowed_models(*lists: list[str] | None) -> frozenset[str] | None:
    """What every allow-list permits (None lists allow anything); None when none restricts."""
    allowed: frozenset[str] | None = None
    for models in lists:
        if models is not None:
            allowed = frozenset(models) if allowed is None else allowed & frozenset(models)
    return allowed


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


class AuthUnavailable(Exception):
    """A key could not be checked because the database did not answer."""


async def notify_key_changed(conn: Db, prefix: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"key:{prefix}")


async def notify_tenant_changed(conn: Db, tenant_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"tenant:{tenant_id}")


async def notify_project_changed(conn: Db, project_id: uuid.UUID) -> None:
    """A project's policy changed: every process reloads the keys in it."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"project:{project_id}")


async def notify_prices_changed(conn: Db) -> None:
    """A new price version: every gateway reloads it at once (see Runtime)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, "prices")


class AuthCache:
    def __init__(self, pool_getter: Callable[[], asyncpg.Pool | None], *, ttl: float = 30.0,
                 negative_ttl: float = 5.0, negative_cache_size: int = 4096,
                 unknown_lookups_per_second: float = 20.0, unknown_lookup_burst: int = 50,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._pool_getter = pool_getter
        self._ttl = ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self._entries: dict[str, _Entry] = {}
        self._refused = RefusalCache(negative_cache_size, negative_ttl)
        self._directory = KeyDirectory()
        self._budget = LookupBudget(unknown_lookups_per_second, unknown_lookup_burst, clock)
        # One lookup per prefix at a time; an announcement detaches it, so later requests look again.
        self._inflight: dict[str, asyncio.Task[_Entry | None]] = {}
        # Bumped by every announcement: a lookup that began before one may hold what it changed.
        self._generation = 0
        self._directory_loaded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Other per-process caches keyed by tenant or key (budgets) evict on the same notifications.
        self.subscribers: list[Callable[[str], None]] = []

    async def authenticate(self, key: str) -> Principal | None:
        if not looks_like_key(key):
            return None
        prefix = key_prefix(key)
        now = self._clock()
        entry = self._entries.get(prefix)
        if entry is None or entry[2] < now:
            if self._refused.refused(prefix, now):
                return None
            if (entry is None and prefix not in self._inflight
                    and self._directory.may_exist(prefix) is not True and not self._budget.take()):
                if self._directory.loaded:
                    return None  # no key has it, as of every announcement heard
                raise AuthUnavailable("too many unknown keys to check right now")
            stale = entry
            try:
                entry = await self._lookup(prefix)
            except (*_LOOKUP_ERRORS, AuthUnavailable) as exc:
                # The database is away: no key can be revoked meanwhile, so a known key stays good;
                # an unknown one cannot be checked, which is not the client's fault.
                if stale is None:
                    raise AuthUnavailable("key lookup failed") from exc
                entry = stale
            if entry is None:
                return None
        stored_hash, principal, _ = entry
        if principal.expires_at is not None and principal.expires_at <= self._wall_clock():
            return None
        return principal if matches(key, stored_hash) else None

    async def _lookup(self, prefix: str) -> _Entry | None:
        task = self._inflight.get(prefix)
        if task is None:
            task = asyncio.create_task(self._load(prefix, self._clock()), name="auth-lookup")
            self._inflight[prefix] = task
            task.add_done_callback(lambda done: self._lookup_done(prefix, done))
        # A caller that gives up does not cancel the others' lookup.
        return await asyncio.shield(task)

    def _lookup_done(self, prefix: str, task: asyncio.Task[_Entry | None]) -> None:
        if self._inflight.get(prefix) is task:
            del self._inflight[prefix]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    async def _load(self, prefix: str, now: float) -> _Entry | None:
        pool = self._pool_getter()
        if pool is None:
            raise AuthUnavailable("no database connection")
        generation = self._generation
        row = await fetchrow_bounded(pool, _LOOKUP, prefix)
        current = generation == self._generation
        stored_hash, expires_at = b"", None
        if row is not None and row["prefix"] == prefix:
            stored_hash, expires_at = row["key_hash"], row["expires_at"]
        elif row is not None:
            # The secret a rotation replaced: good until its grace period ends.
            stored_hash, expires_at = row["previous_key_hash"], _earliest(row["expires_at"], row["previous_expires_at"])
        if (row is None or row["revoked_at"] is not None or row["status"] != "active"
                or (expires_at is not None and expires_at <= self._wall_clock())):
            self._entries.pop(prefix, None)
            if current:
                self._refused.add(prefix, now)
            return None
        principal = Principal(
            tenant_id=row["tenant_id"],
            tenant_name=row["name"],
            key_id=row["key_id"],
            key_prefix=prefix,
            markup=row["markup"],
            allowed_models=allowed_models(row["allowed_models"], row["project_models"], row["key_models"]),
            denied_front_ends=frozenset(row["denied_front_ends"] or ()),
            rpm_limit=row["rpm_limit"],
            tpm_limit=row["tpm_limit"],
            budgets=_budget_rules(row["budgets"]),
            project_id=row["project_id"],
            expires_at=expires_at,
        )
        entry = (bytes(stored_hash), principal, now + self._ttl)
        if current:
            self._entries[prefix] = entry
        return entry

    def evict(self, payload: str) -> None:
        for subscriber in self.subscribers:
            subscriber(payload)
        kind, _, value = payload.partition(":")
        if kind == "prices":
            return  # not about keys: the runtime's subscriber reloads the prices
        self._generation += 1
        if kind == "key":
            prefix = value[:PREFIX_LEN]
            self._entries.pop(prefix, None)
            self._refused.discard(prefix)
            self._inflight.pop(prefix, None)
            self._directory.announce(prefix)
            return
        self._inflight.clear()
        if kind == "tenant":
            for prefix, (_, principal, _) in list(self._entries.items()):
                if str(principal.tenant_id) == value:
                    self._entries.pop(prefix, None)
            # A re-enabled tenant's keys may sit in the refusal cache, which knows no tenant.
            self._refused.clear()
        elif kind == "project":
            for prefix, (_, principal, _) in list(self._entries.items()):
                if str(principal.project_id) == value:
                    self._entries.pop(prefix, None)
        else:
            self.clear()

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._refused.clear()
        self._inflight.clear()

    def cached_entries(self) -> int:
        return len(self._entries)

    def refused_entries(self) -> int:
        return len(self._refused)

    async def start(self, database_url: str) -> None:
        self._task = asyncio.create_task(self._listen(database_url), name="auth-listener")
        if self._pool_getter() is not None:
            # Until the directory is loaded unknown keys are rationed; a reachable database loads it
            # in one round trip, which is worth waiting for before the first request.
            try:
                await asyncio.wait_for(self._directory_loaded.wait(), _DIRECTORY_WAIT)
            except TimeoutError:
                log.warning("auth_directory_not_loaded")

    async def _listen(self, database_url: str) -> None:
        backoff = 0.5
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(database_url, timeout=5)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c, done=closed: done.set())
                await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: self.evict(payload))
                # Anything could have changed while we were not listening.
                self.clear()
                rows = await conn.fetch(_PREFIXES, timeout=30)
                self._directory.load(row[0] for row in rows)
                self._directory_loaded.set()
                backoff = 0.5
                await closed.wait()  # stop() cancels this task
            except _LOOKUP_ERRORS as exc:
                log.warning("auth_listener_down", error=type(exc).__name__)
            finally:
                # Announcements may be missed from here on: the directory vouches for nothing.
                self._directory.unload()
                if conn is not None and not conn.is_closed():
                    await conn.close()
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._task)
