"""The Baseten stand-in every simulator test file drives: one server per module, reset per test."""

from __future__ import annotations

import pytest

from service.simulator.baseten import BasetenState, create_app
from service.simulator.control import BasetenConfig
from service.simulator.runner import ServerThread

STANDIN_KEY = "test-key-123"


@pytest.fixture(scope="module")
def served():
    state = BasetenState(config=BasetenConfig(api_key=STANDIN_KEY))
    with ServerThread(create_app(state)) as server:
        yield state, server


@pytest.fixture
def state(served):
    served[0].reset()
    return served[0]
