"""Schemathesis against the OpenAPI document the gateway publishes: no answer is a 5xx, and every
4xx is in OpenAI's error shape."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.conftest import LiveGateway
from tests.reliability.bad_chat_schema import BODY_OPERATIONS, with_chat_bodies
from tests.reliability.bad_http import error_object
from tests.support import create_tenant_with_key

ADMIN_TOKEN = "test-admin-token-0123456789"  # tests.support.gateway_env's
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzzed(standins, postgres):
    """A gateway over a database of its own: the admin API creates and deletes things here."""
    url = postgres.create_database()
    gw = LiveGateway(standins, url)
    yield gw
    gw.stop()
    postgres.drop_database(url)


@pytest.fixture(scope="module")
def fuzz_key(fuzzed) -> str:
    return create_tenant_with_key(fuzzed.database_url, "fuzz").key


@pytest.fixture(scope="module")
def published(fuzzed):
    return schemathesis.openapi.from_url(fuzzed.url + "/schema/openapi.json")


@pytest.fixture(scope="module")
def with_bodies(fuzzed):
    document = httpx.get(fuzzed.url + "/schema/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(with_chat_bodies(document))
    schema.config.update(base_url=fuzzed.url)
    return schema


def check(case, tenant_key: str) -> None:
    token = ADMIN_TOKEN if case.path.startswith("/admin") else tenant_key
    response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=20)
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        content_type = (response.headers.get("content-type") or [""])[0]  # schemathesis keeps header lists
        error_object(content_type, response.json())


def fuzz_every_operation(schema, tenant_key: str, mode: GenerationMode,
                         paths: tuple[str, ...] | None = None) -> list[str]:
    """Run each operation's cases through `check`; the failures, one line per operation."""
    # schemathesis.pytest's own parametrize relies on a pytest internal (Function._nodeid) that
    # pytest 9 removed, so each operation's strategy is driven by Hypothesis directly.
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if paths is None or op.path in paths]
    assert operations
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            check(case, tenant_key)

        try:
            run()
        except Unsatisfiable:
            # Nothing to negate: no parameters, or only path strings, which any text satisfies.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # noqa: BLE001 - reported per operation below
            failures.append(f"{operation.label} ({mode.value}): {type(exc).__name__}: {exc}"[:2000])
    return failures


MODES = pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                ids=lambda m: m.value)


@MODES
def test_published_operations_never_5xx_and_4xx_are_openai_shaped(published, fuzz_key, mode):
    failures = fuzz_every_operation(published, fuzz_key, mode)
    assert not failures, "\n\n".join(failures)


@MODES
def test_chat_bodies_never_5xx_and_4xx_are_openai_shaped(with_bodies, fuzz_key, mode):
    failures = fuzz_every_operation(with_bodies, fuzz_key, mode, BODY_OPERATIONS)
    assert not failures, "\n\n".join(failures)
