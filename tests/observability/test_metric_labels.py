"""The metrics' fast labels(): the same child as prometheus_client's, and its errors unchanged."""

from __future__ import annotations

import pytest

from service.observability.metrics import Metrics
from tests.observability.prometheus_helpers import total


def test_a_known_label_set_returns_the_librarys_own_child() -> None:
    m = Metrics()
    first = m.requests.labels("m", "baseten", "2xx", "false")
    assert m.requests.labels("m", "baseten", "2xx", "false") is first
    assert m.requests.labels(model="m", front_end="baseten", status_class="2xx", stream="false") is first
    first.inc()
    m.requests.labels("m", "baseten", "2xx", "false").inc(2)
    assert total(m.exposition().decode(), "switchyard_requests_total") == 3


def test_values_that_are_not_strings_reach_the_same_child_through_the_library() -> None:
    m = Metrics()
    m.attempts.labels("baseten", 502).inc()
    m.attempts.labels("baseten", "502").inc()
    assert m.attempts.labels("baseten", 502) is m.attempts.labels("baseten", "502")
    assert total(m.exposition().decode(), "switchyard_upstream_attempts_total", outcome="502") == 2


def test_wrong_labels_still_raise_the_librarys_errors() -> None:
    m = Metrics()
    m.requests.labels("m", "baseten", "2xx", "false")
    with pytest.raises(ValueError, match="Incorrect label count"):
        m.requests.labels("m", "baseten")
    with pytest.raises(ValueError, match="Incorrect label names"):
        m.requests.labels(model="m")
    child = m.requests.labels("m", "baseten", "2xx", "false")
    with pytest.raises(ValueError, match="already has labels"):
        child.labels("m", "baseten", "2xx", "false")
