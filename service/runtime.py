"""Everything long-lived a process owns: pools, adapters, routing state, the usage writer, the
alert delivery worker.

Built in the app's lifespan (never at import) and torn down in reverse order on shutdown,
draining the usage queue last-but-one so no row is lost. Collaborators are passed explicitly:
nothing below reaches back into the runtime.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import asyncpg
import httpx
import structlog

from service.alerts.delivery import AlertDispatcher
from service.alerts.webhooks import sync_operator_webhook
from service.auth.cache import AuthCache
from service.catalog.loader import load_catalog, merge_overrides, parse_catalog
from service.catalog.model import Catalog
from service.catalog.sync import latest_version
from service.db.pool import create_pool, ensure_partitions
from service.gateway.attempt import AttemptFactory
from service.gateway.observers import (
    AllocatorObserver,
    CalibrationObserver,
    HealthObserver,
    MetricsObserver,
    QuoteObserver,
)
from service.gateway.request import Gateway
from service.inbound.responses_store import purge_expired
from service.metering.admission import Admitter
from service.metering.balances import BalanceWatcher
from service.metering.ledger import UsageWriter
from service.metering.pricing import CentsUnit, PriceBook
from service.metering.quota import QuotaLeaser
from service.observability.logging import flush_logs
from service.observability.metric_values import flush_metric_values
from service.observability.metrics import Metrics
from service.routing.allocation import FlatFeeAllocator
from service.routing.capacity import CapacityBoard, KeyLimits
from service.routing.estimate import Calibration
from service.routing.health import BreakerConfig, HealthBoard
from service.routing.priors import load_output_priors, seed_calibration
from service.routing.quotes import QuoteAccuracy
from service.routing.state import RoutingState
from service.settings import Settings
from service.tasks import cancel_and_wait
from service.upstreams.base import Adapter, Quoter
from service.upstreams.baseten import BasetenAdapter
from service.upstreams.http import create_http_client, create_session, create_transport
from service.upstreams.orthogonal import OrthogonalAdapter
from service.upstreams.xpay import XpayAdapter

log = structlog.get_logger("switchyard.runtime")

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class Runtime:
    def __init__(self, settings: Settings, *, catalog: Catalog | None = None, metrics: Metrics | None = None) -> None:
        if settings.database_url is None:
            raise ValueError("Runtime needs a database URL; the CLI starts an embedded Postgres when none is set")
        self.settings = settings
        self.database_url: str = settings.database_url
        self._catalog_given = catalog is not None
        self.metrics = metrics or Metrics(tenant_cap=settings.metrics_tenant_cap)
        self.pool: asyncpg.Pool | None = None
        self.health = HealthBoard(BreakerConfig(min_failures=settings.breaker_failures,
                                                cooldown_seconds=settings.breaker_cooldown_seconds))
        self.health.on_change = lambda route, state: self.metrics.circuit_state.labels(route).set(state)
        self.capacity = CapacityBoard()
        # xpay's limits bind each API key; with XPAY_API_KEYS every key is its own slot pool.
        self.capacity.configure_pool("xpay", [KeyLimits(k.rpm, k.concurrency) for k in settings.xpay_keys()]
                                     or [KeyLimits(settings.xpay_rpm, settings.xpay_concurrency)])
        self.calibration = Calibration()
        # Who gets xpay's scarce flat-fee calls (service.routing.allocation), and how far Orthogonal's
        # quotes can be trusted: learned from every call, kept across catalog swaps.
        self.allocators = {"xpay": FlatFeeAllocator(self.capacity, "xpay")}
        self.quote_accuracy = QuoteAccuracy()
        self.routing = RoutingState(
            catalog or load_catalog(settings.catalog_path, settings.catalog_overrides_path),
            health=self.health, capacity=self.capacity, calibration=self.calibration,
            allocators=self.allocators, quote_accuracy=self.quote_accuracy)
        self.prices = PriceBook(CentsUnit(settings.orthogonal_price_cents_unit))
        self.adapters: dict[str, Adapter] = {}
        self.quoter: Quoter | None = None
        self.http: httpx.AsyncClient | None = None
        self.session: aiohttp.ClientSession | None = None
        self.auth = AuthCache(lambda: self.pool)
        self.auth.subscribers.append(self._announcement)
        self.ledger = UsageWriter(
            lambda: self.pool,
            settings.journal_dir(),
            legacy_spill=(settings.spill_path(),),
            journal_wait=settings.usage_journal,
            max_queue=settings.usage_queue_max,
            flush_rows=settings.usage_flush_rows,
            flush_seconds=settings.usage_flush_seconds,
            metrics=self.metrics,
            spike=settings.alerts.spike,
        )
        self.alerts = AlertDispatcher(lambda: self.pool, settings.alerts)
        self.leaser = QuotaLeaser(lambda: self.pool)
        self.admitter = Admitter(self.leaser, metrics=self.metrics)
        self.attempts = AttemptFactory(
            capacity=self.capacity, prices=self.prices, ledger=self.ledger, catalog=self.routing,
            observers=[HealthObserver(self.health), MetricsObserver(self.metrics),
                       CalibrationObserver(self.calibration), AllocatorObserver(self.allocators),
                       QuoteObserver(self.quote_accuracy)])
        self.gateway = Gateway(settings=settings, routing=self.routing, adapters=self.adapters, quoter=None,
                               admitter=self.admitter, attempts=self.attempts, prices=self.prices,
                               metrics=self.metrics)
        self.balances: BalanceWatcher | None = None
        self._decisions_exported: dict[str, tuple[int, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = False
        self.draining = False

    @property
    def catalog(self) -> Catalog:
        return self.routing.catalog

    async def start(self) -> None:
        s = self.settings
        self.transport = create_transport()
        self.http = create_http_client(s.timeouts, transport=self.transport)
        self.session = create_session()
        self._build_adapters(self.http, self.session)
        self.routing.enable(frozenset(self.adapters))
        try:
            await self._connected(await create_pool(self.database_url))
        except _DB_ERRORS as exc:
            # Serve anyway: usage waits in the journal and replays when the database returns.
            log.error("database_unavailable_at_start", error=type(exc).__name__)
            self.pool = None
            self._tasks.append(asyncio.create_task(self._connect_later(), name="connect-later"))
        await self.auth.start(self.database_url)
        self._tasks.append(asyncio.create_task(self._partition_upkeep(), name="partition-upkeep"))
        self._tasks.append(asyncio.create_task(self._purge_stored_responses(), name="responses-purge"))
        self.balances = BalanceWatcher(self.adapters, self.metrics)
        self._tasks.append(asyncio.create_task(self.balances.run(), name="balances"))
        if s.metrics_port is not None:
            self._tasks.append(asyncio.create_task(self._refresh_gauges(), name="gauges"))
        self.ledger.start()
        self.leaser.start()
        self.alerts.start()
        self.ready = True
        log.info("started", front_ends=sorted(self.adapters), catalog_version=self.catalog.version,
                 models=len(self.catalog.models))

    def _build_adapters(self, http: httpx.AsyncClient, session: aiohttp.ClientSession) -> None:
        s = self.settings
        if s.baseten_api_key:
            self.adapters["baseten"] = BasetenAdapter(session, s.baseten_base_url, s.baseten_api_key, s.timeouts)
        if s.xpay_keys():
            self.adapters["xpay"] = XpayAdapter.from_settings(http, s)
        if s.orthogonal_api_key:
            orthogonal = OrthogonalAdapter.from_settings(http, s)
            self.adapters["orthogonal"] = orthogonal
            self.quoter = self.gateway.quoter = orthogonal

    async def _connected(self, pool: asyncpg.Pool) -> None:
        """The database answers (at start or later): partitions ahead, the newest prices, and what the
        ledger knows of answer lengths, so expectations do not restart from a default."""
        self.pool = pool
        await ensure_partitions(pool)
        await self._load_price_version()
        try:
            async with pool.acquire() as conn:
                seed_calibration(self.calibration, await load_output_priors(conn))
        except _DB_ERRORS as exc:
            log.warning("output_priors_unavailable", error=type(exc).__name__)
        await self._sync_operator_webhook()

    async def _sync_operator_webhook(self) -> None:
        """The operator's webhook from the environment, written where the outbox fans events out."""
        alerts = self.settings.alerts
        if alerts.operator_url is None or alerts.operator_secret is None or self.pool is None:
            return
        try:
            async with self.pool.acquire() as conn:
                await sync_operator_webhook(conn, alerts.operator_url, alerts.operator_secret)
        except _DB_ERRORS as exc:
            log.error("operator_webhook_sync_failed", error=type(exc).__name__)

    async def _load_price_version(self) -> None:
        """The newest price version `catalog sync` recorded, unless a catalog file is configured."""
        if self._catalog_given or self.settings.catalog_path is not None or self.pool is None:
            return
        async with self.pool.acquire() as conn:
            raw = await latest_version(conn)
        if raw is None:
            return
        if self.settings.catalog_overrides_path is not None:
            raw = merge_overrides(raw, json.loads(self.settings.catalog_overrides_path.read_text("utf-8")))
        catalog = parse_catalog(raw)
        if catalog.version != self.catalog.version:
            self.routing.use_catalog(catalog)
            log.info("price_version_loaded", version=catalog.version)

    def _announcement(self, payload: str) -> None:
        """A notification on the shared channel: a new price version is reloaded at once."""
        if payload == "prices" and not self.draining:
            task = asyncio.get_running_loop().create_task(self._reload_prices())
            self._tasks.append(task)
            task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _reload_prices(self) -> None:
        try:
            await self._load_price_version()
        except (*_DB_ERRORS, ValueError) as exc:
            log.warning("price_version_reload_failed", error=type(exc).__name__)

    async def _partition_upkeep(self) -> None:
        """Monthly ledger partitions are created ahead by the service itself, twice a day."""
        while not self.draining:
            await asyncio.sleep(12 * 3600)
            if self.pool is not None:
                try:
                    created = await ensure_partitions(self.pool)
                    if created:
                        log.info("usage_partitions_created", count=created)
                except _DB_ERRORS as exc:
                    log.warning("partition_upkeep_failed", error=type(exc).__name__)

    async def _purge_stored_responses(self) -> None:
        """Stored Responses past their retention go, a bounded batch at a time."""
        while not self.draining:
            await asyncio.sleep(3600)
            if self.pool is None:
                continue
            try:
                async with self.pool.acquire() as conn:
                    while await purge_expired(conn, 5000) == 5000:
                        pass
            except _DB_ERRORS as exc:
                log.warning("stored_responses_purge_failed", error=type(exc).__name__)

    async def _connect_later(self) -> None:
        delay = 1.0
        while self.pool is None and not self.draining:
            await asyncio.sleep(delay)
            try:
                await self._connected(await create_pool(self.database_url))
                log.info("database_connected")
            except _DB_ERRORS:
                delay = min(delay * 2, 15.0)

    async def _refresh_gauges(self, interval: float = 1.0) -> None:
        """With the metrics on the master's own port no scrape reaches a worker: each sets its
        point-in-time gauges itself, often enough for any scrape interval."""
        while not self.draining:
            self.refresh_gauges()
            await asyncio.sleep(interval)

    def refresh_gauges(self) -> None:
        self.metrics.usage_queue_depth.set(self.ledger.depth)
        self.observe_capacity()

    def observe_capacity(self) -> None:
        """Point-in-time capacity series, read when /metrics is scraped (process-local state)."""
        m = self.metrics
        for group, allocator in self.allocators.items():
            state = allocator.state()
            m.flat_fee_price.labels(group, "per_call").set(state.per_call_usd)
            m.flat_fee_price.labels(group, "per_second").set(state.per_second_usd)
            seen = self._decisions_exported.get(group, (0, 0))
            m.flat_fee_decisions.labels(group, "admitted").inc(state.admitted - seen[0])
            m.flat_fee_decisions.labels(group, "held_back").inc(state.held_back - seen[1])
            self._decisions_exported[group] = (state.admitted, state.held_back)
            keys = self.capacity.keys(group)
            m.capacity_slots.labels(group, "in_use").set(sum(k.inflight for k in keys))
            m.capacity_slots.labels(group, "limit").set(sum(k.concurrency or 0 for k in keys))

    async def database_ok(self) -> bool:
        if self.pool is None:
            return False
        try:
            async with asyncio.timeout(2):
                await self.pool.fetchval("SELECT 1")
            return True
        except _DB_ERRORS:
            return False

    async def stop(self) -> None:
        self.draining = True
        self.ready = False
        for task in list(self._tasks):
            await cancel_and_wait(task)
        # Events the last flushes below create wait in the outbox for the next worker, here or elsewhere.
        await self.alerts.stop()
        await self.ledger.stop()
        await self.leaser.stop()
        await self.auth.stop()
        for adapter in self.adapters.values():
            await adapter.aclose()
        if self.http is not None:
            await self.http.aclose()
        if self.session is not None:
            await self.session.close()
        if self.pool is not None:
            await self.pool.close()
        log.info("stopped", rows_written=self.ledger.written, rows_spilled=self.ledger.spilled)
        flush_logs()
        flush_metric_values()
