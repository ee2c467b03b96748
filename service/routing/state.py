"""The routing state a process plans with: the catalog in force and the planner over it.

A new price version swaps in a new planner at once; requests already planned keep the routes and
prices they were planned with (their rows name that version).
"""

from __future__ import annotations

from service.catalog.model import Catalog
from service.routing.capacity import CapacityBoard
from service.routing.estimate import Calibration
from service.routing.health import HealthBoard
from service.routing.planner import Planner


class RoutingState:
    def __init__(self, catalog: Catalog, *, health: HealthBoard, capacity: CapacityBoard,
                 calibration: Calibration, enabled_front_ends: frozenset[str] = frozenset()) -> None:
        self._health = health
        self._capacity = capacity
        self._calibration = calibration
        self._enabled = enabled_front_ends
        self.planner = self._planner(catalog)

    def _planner(self, catalog: Catalog) -> Planner:
        return Planner(catalog, enabled_front_ends=self._enabled, health=self._health, capacity=self._capacity,
                       calibration=self._calibration)

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
