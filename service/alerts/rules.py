"""What raises an alert: the kinds of event, a budget's default thresholds, the spike rule.

The rules themselves run in Postgres, in the calls that record spend (0006_alerts); this module
holds the values Python passes them and reports back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

BUDGET_THRESHOLD = "budget.threshold"
BUDGET_LIMIT_REACHED = "budget.limit_reached"
SPEND_SPIKE = "spend.spike"
EVENT_KINDS = (BUDGET_THRESHOLD, BUDGET_LIMIT_REACHED, SPEND_SPIKE)

# Percent of a budget's limit; switchyard_alert_budget_spend applies the same list when a budget
# has none of its own.
DEFAULT_THRESHOLDS: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
MAX_THRESHOLDS = 20


@dataclass(frozen=True, slots=True)
class SpikeRule:
    """A tenant's billed spend in one UTC hour reaches `factor` times the median of its hours with
    spend in the `window_hours` before it (given at least `min_hours` such hours) and at least
    `min_usd`. A factor of 0 turns the rule off."""

    factor: Decimal = Decimal(5)
    min_usd: Decimal = Decimal(1)
    min_hours: int = 6
    window_hours: int = 168

    @property
    def enabled(self) -> bool:
        return self.factor > 0

    def args(self) -> tuple[Decimal, Decimal, int, int]:
        """The ledger statement's parameters, in order."""
        return self.factor, self.min_usd, self.min_hours, self.window_hours


DEFAULT_SPIKE = SpikeRule()
