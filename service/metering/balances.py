"""The operator's prepaid balances at the marketplaces, asked on a timer and exported as a metric.

Receipts already report xpay's balance after every call; this also covers quiet periods and
Orthogonal, whose answers carry no balance, so the balance panel and its alert never go stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol, runtime_checkable

import structlog

from service.observability.metrics import Metrics

log = structlog.get_logger("switchyard.balances")

REFRESH_SECONDS = 300.0


@runtime_checkable
class BalanceSource(Protocol):
    async def fetch_balance(self) -> Decimal | None: ...


class BalanceWatcher:
    def __init__(self, adapters: Mapping[str, object], metrics: Metrics, *, every: float = REFRESH_SECONDS) -> None:
        self._sources: dict[str, BalanceSource] = {
            name: a for name, a in adapters.items() if isinstance(a, BalanceSource)}
        self._metrics = metrics
        self._every = every

    async def refresh(self) -> dict[str, Decimal]:
        seen: dict[str, Decimal] = {}
        for name, source in self._sources.items():
            try:
                balance = await source.fetch_balance()
            except Exception as exc:  # noqa: BLE001 - a balance check must never take the gateway down
                log.warning("balance_check_failed", front_end=name, error=type(exc).__name__)
                continue
            if balance is not None:
                seen[name] = balance
                self._metrics.marketplace_balance.labels(name).set(float(balance))
        return seen

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._every)
