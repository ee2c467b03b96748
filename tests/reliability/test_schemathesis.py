"""Schemathesis against the OpenAPI document the gateway publishes, with every check on.

It runs as its CLI does (`st run`): the examples, coverage, fuzzing and stateful phases, positive
and negative data, and every check: no 5xx, each status and content type and header documented,
each body matching its schema, schema-valid requests accepted and schema-invalid ones refused,
405 with `Allow` for undeclared methods and OPTIONS listing exactly the documented ones, missing
auth refused. The exceptions, each with its reason, are in schemathesis.toml; schemathesis_hooks.py
adds one check of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveGateway
from tests.support import create_tenant_with_key

HERE = Path(__file__).parent
ADMIN_TOKEN = "test-admin-token-0123456789"  # tests.support.gateway_env's
ST = Path(sys.executable).with_name("st")
# Examples per operation and phase (reads and deletes take 20, schemathesis.toml): with the 65
# operations the run takes under two minutes on two quiet cores, three and a half with other work.
MAX_EXAMPLES = 60


@pytest.fixture(scope="module")
def fuzzed(standins, postgres):
    """A gateway over a database of its own: the admin API creates and deletes things here."""
    url = postgres.create_database()
    # The fuzzer registers made-up alert webhook URLs: checked for form only (no DNS look-up of
    # invented names) and never called (the delivery worker does not come round again in the run).
    gw = LiveGateway(standins, url, SWITCHYARD_ALERT_ALLOW_PRIVATE_URLS="true", SWITCHYARD_ALERT_POLL_SECONDS="86400")
    yield gw
    gw.stop()
    postgres.drop_database(url)


@pytest.fixture(scope="module")
def fuzz_key(fuzzed) -> str:
    return create_tenant_with_key(fuzzed.database_url, "fuzz").key


@pytest.fixture(scope="module")
def console_session(fuzzed) -> str:
    """An operator's console session: the console views are fuzzed signed in, across every tenant."""
    signed_in = httpx.post(fuzzed.url + "/console/api/session", json={"admin_token": ADMIN_TOKEN},
                           headers={"x-switchyard-csrf": "fuzz"}, timeout=10)
    assert signed_in.status_code == 200, signed_in.text
    return signed_in.cookies["switchyard_console"]


def test_the_document_lists_exactly_the_served_routes(fuzzed):
    document = httpx.get(fuzzed.url + "/schema/openapi.json", timeout=10).json()
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {(route.path_format, method) for route in fuzzed.app.routes for method in route.methods
              if method != "OPTIONS"}
    assert documented == served


def test_every_error_status_is_openai_shaped_in_the_document(fuzzed):
    document = httpx.get(fuzzed.url + "/schema/openapi.json", timeout=10).json()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (path, method)
            for status, response in op["responses"].items():
                if int(status) >= 400 and (path, status) != ("/readyz", "503"):
                    # The Messages API answers in Anthropic's shape, but for what a lower layer refuses.
                    shape = "A" if path.startswith("/v1/messages") and status != "431" else "E"
                    assert response == {"$ref": f"#/components/responses/{shape}{status}"}, (path, method, status)


@pytest.mark.timeout(900)
def test_schemathesis_finds_nothing_with_every_check(fuzzed, fuzz_key, console_session, tmp_path):
    env = {**os.environ, "SWITCHYARD_FUZZ_TENANT_KEY": fuzz_key, "SWITCHYARD_FUZZ_ADMIN_TOKEN": ADMIN_TOKEN,
           "SWITCHYARD_FUZZ_CONSOLE_SESSION": console_session,
           "SCHEMATHESIS_HOOKS": str(HERE / "schemathesis_hooks.py")}
    # Every check is on by default; `--checks all` on the command line would also switch back on the
    # two the configuration turns off for one operation each (the CLI outranks the file).
    args = [str(ST), "--config-file", str(HERE / "schemathesis.toml"), "run", fuzzed.url + "/schema/openapi.json",
            "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--no-color",
            "--report-dir", str(tmp_path)]
    # Deterministic generation implies no example database, and schemathesis refuses to be told both.
    args += ["--generation-deterministic"] if os.environ.get("CI") else ["--generation-database", "none"]
    if os.environ.get("SWITCHYARD_FUZZ_SEED"):  # replays a failed run: schemathesis prints its seed
        args += ["--seed", os.environ["SWITCHYARD_FUZZ_SEED"]]
    started = time.monotonic()
    run = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {elapsed:.0f} s\n" + run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    # schemathesis leaves out the document's own URL; every other operation must have been run.
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested, run.stdout[-3000:]
    assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) >= 22
