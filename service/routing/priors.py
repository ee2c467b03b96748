"""Expected answer lengths from the ledger, loaded at start, so a restarted process does not go
back to a fixed prior for every model and tenant."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.routing.estimate import Calibration

PRIOR_DAYS = 3
# Groups (model x tenant) read at most; the busiest first, so the bound drops the long tail.
PRIOR_GROUPS = 20_000

# Answers that really came back (status ok, usage reported), per model and tenant, recent only:
# the partition key bounds the scan to the last days' partitions.
_QUERY = """
SELECT served_model, tenant_id, count(*)::bigint AS answers, avg(completion_tokens)::float8 AS mean
FROM usage_events
WHERE status = 'ok' AND NOT estimated AND started_at >= now() - make_interval(days => $1)
GROUP BY served_model, tenant_id
ORDER BY answers DESC
LIMIT $2
"""


class _Fetches(Protocol):
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class OutputPriors:
    """Per model: (mean completion tokens, answers). Per tenant: (mean ratio of its answers to the
    serving model's mean, answers): the shape Calibration learns live."""

    models: dict[str, tuple[float, int]] = field(default_factory=dict)
    tenants: dict[Any, tuple[float, int]] = field(default_factory=dict)


def priors_from_groups(groups: list[tuple[str, Any, int, float]]) -> OutputPriors:
    """(model, tenant, answers, mean completion tokens) per group into per-model means and
    per-tenant ratios."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for model, _tenant, answers, mean in groups:
        totals[model][0] += answers * mean
        totals[model][1] += answers
    models = {m: (tokens / answers, int(answers)) for m, (tokens, answers) in totals.items() if answers}
    ratios: dict[Any, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for model, tenant, answers, mean in groups:
        model_mean = models[model][0]
        if model_mean > 0:
            ratios[tenant][0] += answers * (mean / model_mean)
            ratios[tenant][1] += answers
    tenants = {t: (weighted / answers, int(answers)) for t, (weighted, answers) in ratios.items() if answers}
    return OutputPriors(models=models, tenants=tenants)


async def load_output_priors(conn: _Fetches, *, days: int = PRIOR_DAYS, groups: int = PRIOR_GROUPS) -> OutputPriors:
    """Read the last `days` of served answers (at most `groups` model x tenant groups)."""
    rows = await conn.fetch(_QUERY, days, groups)
    return priors_from_groups([(r["served_model"], r["tenant_id"], int(r["answers"]), float(r["mean"] or 0.0))
                               for r in rows])


def seed_calibration(calibration: Calibration, priors: OutputPriors) -> None:
    calibration.seed(priors.models, priors.tenants)
