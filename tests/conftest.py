"""Session fixtures: one Postgres, stand-in upstreams, one live gateway over real HTTP."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs each example set once and must not meet a new random one on its only run; local runs
# keep exploring (and hypothesis's example database remembers what they find).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# After the profile is chosen, so that settings built at import time inherit it.
from tests.support import Postgres, create_tenant_with_key, gateway_env  # noqa: E402


@pytest.fixture(scope="session")
def postgres():
    pg = Postgres()
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def database_url(postgres):
    """A fresh database with the real migrations applied, shared by the session's tests."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(scope="session")
def standins():
    from service.simulator.runner import start_standins

    s = start_standins()
    yield s
    s.stop()


class LiveGateway:
    def __init__(self, standins, database_url: str, **env: str) -> None:
        from service.app import create_app
        from service.settings import load_settings
        from service.simulator.runner import ServerThread

        self.data_dir = Path(tempfile.mkdtemp(prefix="switchyard-gw-"))
        self.env = gateway_env(standins, database_url, self.data_dir, **env)
        self.settings = load_settings(self.env)
        self.app = create_app(self.settings)
        self.server = ServerThread(self.app).start()
        self.url = self.server.url
        self.database_url = database_url

    @property
    def runtime(self):
        return self.app.state.runtime

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def gateway(standins, database_url):
    gw = LiveGateway(standins, database_url)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def tenant(database_url):
    return create_tenant_with_key(database_url, "e2e-tenant")


@pytest.fixture
def client(gateway, tenant):
    import openai

    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0, timeout=20)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _reset_standins(request):
    """Stand-in faults and logs never leak from one test into the next."""
    yield
    if "gateway" in request.fixturenames:
        request.getfixturevalue("gateway").runtime.health.reset()
    if "standins" in request.fixturenames:
        s = request.getfixturevalue("standins")
        for state in s.states.values():
            reset = getattr(state, "reset", None)
            if callable(reset):
                reset()
