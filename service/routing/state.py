"""The routing state a process plans with: the catalog in force and the planner over it.

A new price version swaps in a new planner at once; requests already planned keep the routes and
prices they were planned with (their rows name that version).
"""

from __future__ import annotations

from service.catalog.model import Catalog
from service.routing.allocation import FlatFeeAllocator
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.planner import Planner
from service.routing.quotes import QuoteAccuracy


class RoutingState:
    """Everything planning learns (health, calibration, flat-fee prices, quote accuracy) outlives a
    catalog swap: only the planner over the catalog is replaced."""

    def __init__(self, catalog: Catalog, *, health: HealthBoard, capacity: CapacityBoard,
                 calibration: Calibration, enabled_front_ends: frozenset[str] = frozenset(),
                 allocators: dict[str, FlatFeeAllocator] | None = None,
                 quote_accuracy: QuoteAccuracy | None = None) -> None:
        self._health = health
        self._capacity = capacity
        self._calibration = calibration
        self._enabled = enabled_front_ends
        self.allocators = allocators or {}
        self.quote_accuracy = quote_accuracy
        self.planner = self._planner(catalog)

    def _planner(self, catalog: Catalog) -> Planner:
        return Planner(catalog, enabled_front_ends=self._enabled, health=self._health, capacity=self._capacity,
                       calibration=self._calibration, allocators=self.allocators,
                       quote_accuracy=self.quote_accuracy)

    @property
    def catalog(self) -> Catalog:
        return self.planner.catalog

    @property
    def enabled_front_ends(self) -> frozenset[str]:
        return self._enabled

    def enable(self, front_ends: frozenset[str]) -> None:
        self._enabled = front_ends
        self.planner = self._planner(self.catalog)

    def use_catalog(self, catalog: Catalog) -> None:
        self.planner = self._planner(catalog)
