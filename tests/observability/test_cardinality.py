"""Many tenants must not mean many series: the tenant label is capped and the rest fold into
one `__other__` series, through the same calls the gateway and the admission path make."""

from __future__ import annotations

import threading
import uuid

from service.observability.metrics import OTHER_TENANTS, Metrics
from tests.observability.prometheus_helpers import samples

TENANTS = 10_000
CAP = 50
TENANT_SERIES = ("switchyard_tenant_cost_usd_total", "switchyard_budget_remaining_usd")


def _charge(metrics: Metrics, tenant: str, cost: float) -> None:
    """What Attempt._observe and the admitter record for one tenant."""
    label = metrics.tenant(tenant)
    metrics.tenant_cost.labels(label, "provider").inc(cost)
    metrics.tenant_cost.labels(label, "billed").inc(cost * 2)
    metrics.budget_remaining.labels(label).set(100.0)


def _tenant_values(exposition: str) -> set[str]:
    return {labels["tenant"] for name, labels, _ in samples(exposition) if name in TENANT_SERIES}


def _series_count(exposition: str) -> int:
    return len(samples(exposition))


def test_ten_thousand_tenants_leave_the_cap_plus_other() -> None:
    metrics = Metrics(tenant_cap=CAP)
    tenants = [str(uuid.uuid4()) for _ in range(TENANTS)]
    for tenant in tenants[: CAP + 1]:
        _charge(metrics, tenant, 0.5)
    at_cap = _series_count(metrics.exposition().decode())

    for tenant in tenants[CAP + 1 :]:
        _charge(metrics, tenant, 0.5)
    exposition = metrics.exposition().decode()

    values = _tenant_values(exposition)
    assert len(values) == CAP + 1
    assert OTHER_TENANTS in values
    assert values - {OTHER_TENANTS} == set(tenants[:CAP]), "the first tenants seen keep their own series"
    # 9,950 more tenants added no series at all.
    assert _series_count(exposition) == at_cap
    # Folding loses no money: the total is still every tenant's cost (0.5 is exact in binary).
    provider = {labels["tenant"]: value for name, labels, value in samples(exposition)
                if name == "switchyard_tenant_cost_usd_total" and labels["kind"] == "provider"}
    assert sum(provider.values()) == TENANTS * 0.5
    assert provider[OTHER_TENANTS] == (TENANTS - CAP) * 0.5


def test_a_tenant_keeps_its_label_once_admitted() -> None:
    metrics = Metrics(tenant_cap=2)
    assert [metrics.tenant(t) for t in ("a", "b", "c", "a", "b", "c")] == ["a", "b", OTHER_TENANTS, "a", "b",
                                                                          OTHER_TENANTS]


def test_the_cap_holds_under_concurrent_tenants() -> None:
    metrics = Metrics(tenant_cap=CAP)
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for i in range(TENANTS // 8):
            _charge(metrics, f"tenant-{n}-{i}", 0.25)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = _tenant_values(metrics.exposition().decode())
    assert len(values) == CAP + 1 and OTHER_TENANTS in values


def test_exposition_stays_bounded_whatever_the_traffic() -> None:
    """Every labelled series the gateway writes, driven with many distinct tenants and
    requests: the series count depends on models, routes and the cap, never on traffic."""
    metrics = Metrics(tenant_cap=CAP)
    models = [f"org/model-{m}" for m in range(5)]

    def request(n: int) -> None:
        model, front_end = models[n % len(models)], ("baseten", "xpay", "orthogonal")[n % 3]
        metrics.requests.labels(model, front_end, "2xx", "false").inc()
        metrics.request_duration.labels(model, front_end, "false").observe(0.2)
        metrics.tokens.labels(model, front_end, "prompt").inc(10)
        metrics.cost.labels(model, front_end).inc(0.001)
        _charge(metrics, f"tenant-{n}", 0.001)

    for n in range(2_000):
        request(n)
    before = _series_count(metrics.exposition().decode())
    for n in range(2_000, 10_000):
        request(n)
    after = _series_count(metrics.exposition().decode())
    assert after == before
    # 5 models x 3 front ends, each with a handful of series, plus the capped tenants.
    assert after < 15 * 40 + (CAP + 1) * 6
