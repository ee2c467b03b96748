"""The delivery worker each gateway process runs: claim due deliveries, POST them signed, record.

Every attempt of an event carries the same body and the same `Idempotency-Key` (the event id),
so a receiver that saw it before can tell. Failures are retried with exponential backoff and
jitter until the delivery's age bound; a process that stops (or dies) mid-attempt leaves the
row to be claimed again once its lease runs out, by itself or another process.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Callable

import aiohttp
import asyncpg
import structlog

from service.alerts import outbox
from service.alerts.outbox import Claimed, Outcome
from service.alerts.signing import SIGNATURE_HEADER, sign
from service.alerts.urls import PublicOnlyResolver, UrlRefused, refuse_internal_literal
from service.settings import AlertSettings
from service.tasks import cancel_and_wait

log = structlog.get_logger("switchyard.alerts")

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
USER_AGENT = "Switchyard-Alerts/1"
CONCURRENCY = 16
STOP_GRACE_SECONDS = 2.0
MAX_ERROR_CHARS = 300


def retry_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential, capped, with "equal jitter": between half and all of the step, so retries of
    many deliveries that failed together spread out but none comes back at once."""
    step = min(cap, base * float(1 << min(attempt - 1, 32)))
    return step / 2 + rng.uniform(0, step / 2)


def lease_seconds(timeout: float) -> float:
    """How long a claim keeps a row from other workers: past the whole attempt, with room to spare."""
    return 2 * timeout + 1


def delivery_headers(claimed: Claimed, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(claimed.secret, body),
        "Idempotency-Key": str(claimed.event_id),
        "Switchyard-Event-Id": str(claimed.event_id),
        "Switchyard-Event-Type": claimed.kind,
        "Switchyard-Delivery-Id": str(claimed.delivery_id),
        "Switchyard-Delivery-Attempt": str(claimed.attempt),
    }


class AlertDispatcher:
    def __init__(self, pool_getter: Callable[[], asyncpg.Pool | None], settings: AlertSettings, *,
                 holder: str | None = None, concurrency: int = CONCURRENCY,
                 stop_grace: float = STOP_GRACE_SECONDS, rng: random.Random | None = None) -> None:
        self._pool_getter = pool_getter
        self._settings = settings
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._concurrency = concurrency
        self._stop_grace = stop_grace
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not a secret
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._trusted: aiohttp.ClientSession | None = None
        self._guarded: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed_attempts = 0

    @property
    def lease_seconds(self) -> float:
        return lease_seconds(self._settings.timeout_seconds)

    def start(self) -> None:
        # Redirects are not followed (a 3xx is a failure), so a receiver cannot point us elsewhere;
        # proxies from the environment are not used (trust_env is off by default).
        self._trusted = aiohttp.ClientSession()
        if not self._settings.allow_private_urls:
            connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver())
            self._guarded = aiohttp.ClientSession(connector=connector)
        self._task = asyncio.create_task(self._run(), name="alert-delivery")

    async def stop(self) -> None:
        """Stop claiming; attempts in flight get a moment to finish, the rest are retried later."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=self._stop_grace)
            for task in pending:
                await cancel_and_wait(task)
        for session in (self._trusted, self._guarded):
            if session is not None:
                await session.close()
        self._trusted = self._guarded = None

    async def _run(self) -> None:
        while True:
            try:
                free = self._concurrency - len(self._inflight)
                claimed = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a bad moment
                log.warning("alert_claim_failed", error=type(exc).__name__)
                free, claimed = 1, 0
            if claimed < free or claimed == 0:
                await asyncio.sleep(self._settings.poll_seconds)

    async def run_once(self) -> int:
        """Give up on rows past their age, claim as many due rows as there is room for, start them."""
        pool = self._pool_getter()
        free = self._concurrency - len(self._inflight)
        if pool is None or free <= 0:
            return 0
        async with pool.acquire(timeout=5) as conn:
            expired = await outbox.expire(conn, self._settings.max_age_seconds)
            claimed = await outbox.claim(conn, self.holder, free, self.lease_seconds)
        if expired:
            log.warning("alert_deliveries_expired", count=expired)
        for c in claimed:
            task = asyncio.create_task(self._attempt(c), name=f"alert-delivery-{c.delivery_id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(claimed)

    async def _attempt(self, claimed: Claimed) -> None:
        outcome = await self.send(claimed)
        s = self._settings
        retry_in = retry_delay(claimed.attempt, s.retry_base_seconds, s.retry_max_seconds, self._rng)
        pool = self._pool_getter()
        status: str | None = None
        try:
            if pool is None:
                raise OSError("no database pool")
            async with pool.acquire(timeout=5) as conn:
                status = await outbox.record(conn, claimed, outcome, retry_in=retry_in,
                                             max_age=s.max_age_seconds)
        except _DB_ERRORS as exc:
            # Unrecorded: the lease runs out and the delivery is attempted again (at least once).
            log.warning("alert_outcome_unrecorded", delivery=str(claimed.delivery_id),
                        error=type(exc).__name__)
        if outcome.delivered:
            self.delivered += 1
        else:
            self.failed_attempts += 1
            log.info("alert_delivery_failed", delivery=str(claimed.delivery_id), attempt=claimed.attempt,
                     status=status, error=outcome.error)

    async def send(self, claimed: Claimed) -> Outcome:
        """One POST of the event to its webhook; never raises for the receiver's failures."""
        body = claimed.body()
        guarded = claimed.target == "tenant" and not self._settings.allow_private_urls
        session = self._guarded if guarded else self._trusted
        if session is None:
            return Outcome(None, "the delivery worker is not running")
        timeout = self._settings.timeout_seconds
        try:
            if guarded:
                refuse_internal_literal(claimed.url)
            async with session.post(claimed.url, data=body, headers=delivery_headers(claimed, body),
                                    allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                if 200 <= response.status < 300:
                    return Outcome(response.status)
                text = (await response.content.read(200)).decode("utf-8", "replace")
                detail = " ".join(text.split())
                return Outcome(response.status, f"HTTP {response.status}" + (f": {detail}" if detail else ""))
        except UrlRefused as exc:
            return Outcome(None, f"refused: {exc}")
        except TimeoutError:
            return Outcome(None, f"no answer within {timeout:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
