"""The money tests log as production does (JSON lines), not through the console renderer."""

from __future__ import annotations

import pytest

from service.observability.logging import configure_logging


@pytest.fixture(scope="package", autouse=True)
def _json_logs() -> None:
    configure_logging("CRITICAL", True)
