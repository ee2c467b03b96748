"""Everything long-lived a process owns: pools, adapters, routing state, the usage writer.

Built in the app's lifespan (never at import) and torn down in reverse order on shutdown,
draining the usage queue last-but-one so no row is lost.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import structlog

from service.auth.cache import AuthCache
from service.catalog.loader import load_catalog, merge_overrides, parse_catalog
from service.catalog.model import Catalog
from service.catalog.sync import latest_version
from service.db.pool import create_pool, ensure_partitions
from service.gateway.chat import ChatGateway
from service.metering.admission import Admitter
from service.metering.ledger import UsageWriter
from service.metering.quota import QuotaLeaser
from service.observability.logging import flush_logs
from service.observability.metrics import Metrics
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration
from service.routing.health import BreakerConfig, HealthBoard
from service.routing.planner import Planner
from service.settings import Settings
from service.upstreams.baseten import BasetenAdapter
from service.upstreams.http import create_http_client, create_session, create_transport

log = structlog.get_logger("switchyard.runtime")


class Runtime:
    def __init__(self, settings: Settings, *, catalog: Catalog | None = None, metrics: Metrics | None = None) -> None:
        if settings.database_url is None:
            raise ValueError("Runtime needs a database URL; the CLI starts an embedded Postgres when none is set")
        self.settings = settings
        self._catalog_given = catalog is not None
        self.catalog = catalog or load_catalog(settings.catalog_path, settings.catalog_overrides_path)
        self.metrics = metrics or Metrics(tenant_cap=settings.metrics_tenant_cap)
        self.pool: asyncpg.Pool | None = None
        self.health = HealthBoard(BreakerConfig(min_failures=settings.breaker_failures,
                                                cooldown_seconds=settings.breaker_cooldown_seconds))
        self.health.on_change = lambda route, state: self.metrics.circuit_state.labels(route).set(state)
        self.capacity = CapacityBoard()
        self.capacity.configure("xpay", settings.xpay_rpm, settings.xpay_concurrency)
        self.calibration = Calibration()
        self.adapters: dict[str, Any] = {}
        self.http = None
        self.session = None
        self.auth = AuthCache(lambda: self.pool)
        self.ledger = UsageWriter(
            lambda: self.pool,
            settings.spill_path(),
            max_queue=settings.usage_queue_max,
            flush_rows=settings.usage_flush_rows,
            flush_seconds=settings.usage_flush_seconds,
            metrics=self.metrics,
        )
        self.leaser = QuotaLeaser(lambda: self.pool)
        self.admitter = Admitter(self.leaser, lambda: self.pool, metrics=self.metrics)
        self.auth.subscribers.append(self.admitter.evict)
        self.planner: Planner | None = None
        self.gateway = ChatGateway(self)
        self.ready = False
        self.draining = False

    async def start(self) -> None:
        s = self.settings
        self.transport = create_transport()
        self.http = create_http_client(s.timeouts, transport=self.transport)
        self.session = create_session()
        self.adapters = self._build_adapters()
        try:
            self.pool = await create_pool(s.database_url)
            await ensure_partitions(self.pool)
            await self._load_price_version()
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            # Serve anyway: usage spills to disk and replays when the database returns.
            log.error("database_unavailable_at_start", error=type(exc).__name__)
            self.pool = None
            asyncio.create_task(self._connect_later())
        self.planner = Planner(
            self.catalog,
            enabled_front_ends=frozenset(self.adapters),
            health=self.health,
            capacity=self.capacity,
            calibration=self.calibration,
        )
        await self.auth.start(s.database_url)
        self._upkeep = asyncio.create_task(self._partition_upkeep(), name="partition-upkeep")
        self.ledger.start()
        self.leaser.start()
        self.ready = True
        log.info("started", front_ends=sorted(self.adapters), catalog_version=self.catalog.version,
                 models=len(self.catalog.models))

    def _build_adapters(self) -> dict[str, Any]:
        s = self.settings
        adapters: dict[str, Any] = {}
        if s.baseten_api_key:
            adapters["baseten"] = BasetenAdapter(self.session, s.baseten_base_url, s.baseten_api_key, s.timeouts)
        if s.xpay_api_key:
            from service.upstreams.xpay import XpayAdapter

            adapters["xpay"] = XpayAdapter.from_settings(self.http, s)
        if s.orthogonal_api_key:
            from service.upstreams.orthogonal import OrthogonalAdapter

            adapters["orthogonal"] = OrthogonalAdapter.from_settings(self.http, s)
        return adapters

    async def _load_price_version(self) -> None:
        """The newest price version `catalog sync` recorded, unless a catalog file is configured."""
        if self._catalog_given or self.settings.catalog_path is not None:
            return
        async with self.pool.acquire() as conn:
            raw = await latest_version(conn)
        if raw is None:
            return
        if self.settings.catalog_overrides_path is not None:
            raw = merge_overrides(raw, json.loads(self.settings.catalog_overrides_path.read_text("utf-8")))
        self.catalog = parse_catalog(raw)
        log.info("price_version_loaded", version=self.catalog.version)

    async def _partition_upkeep(self) -> None:
        """Monthly ledger partitions are created ahead by the service itself, twice a day."""
        while not self.draining:
            await asyncio.sleep(12 * 3600)
            if self.pool is not None:
                try:
                    created = await ensure_partitions(self.pool)
                    if created:
                        log.info("usage_partitions_created", count=created)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    log.warning("partition_upkeep_failed", error=type(exc).__name__)

    async def _connect_later(self) -> None:
        delay = 1.0
        while self.pool is None and not self.draining:
            await asyncio.sleep(delay)
            try:
                self.pool = await create_pool(self.settings.database_url)
                await ensure_partitions(self.pool)
                log.info("database_connected")
            except (OSError, asyncpg.PostgresError, TimeoutError):
                delay = min(delay * 2, 15.0)

    async def database_ok(self) -> bool:
        if self.pool is None:
            return False
        try:
            async with asyncio.timeout(2):
                await self.pool.fetchval("SELECT 1")
            return True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False

    async def stop(self) -> None:
        self.draining = True
        self.ready = False
        if getattr(self, "_upkeep", None) is not None:
            self._upkeep.cancel()
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
