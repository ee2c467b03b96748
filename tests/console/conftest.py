"""Fixtures for the console tests: the seeded month, HTTP sessions, and Debian's Chromium driven by
Playwright (never a browser Playwright downloads)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.seed import FIRST, LAST, Seed, seed

ADMIN_TOKEN = "test-admin-token-0123456789"  # what tests.support.gateway_env configures
CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
RANGE = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
CSRF_HEADER = "x-switchyard-csrf"


@pytest.fixture(scope="session")
async def seeded(database_url: str) -> Seed:
    return await seed(database_url)


def sign_in(base_url: str, body: dict[str, str], **headers: str) -> httpx.Client:
    """An HTTP client holding a console session, as a browser on the console's origin would."""
    response = httpx.post(base_url + "/console/api/session", json=body, headers={CSRF_HEADER: "sign-in", **headers},
                          timeout=20)
    assert response.status_code == 200, response.text
    # Not yet opened: usable in a `with` block or as it is.
    return httpx.Client(base_url=base_url, timeout=20, cookies=response.cookies,
                        headers={CSRF_HEADER: response.json()["csrf_token"]})


@pytest.fixture
def tenant_a(gateway: Any, seeded: Seed) -> Any:
    client = sign_in(gateway.url, {"api_key": seeded.a.keys[0].key})
    yield client
    client.close()


@pytest.fixture
def operator(gateway: Any, seeded: Seed) -> Any:
    client = sign_in(gateway.url, {"admin_token": ADMIN_TOKEN})
    yield client
    client.close()


def _check_chromium() -> None:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/test-deps.sh (Debian's chromium package)")
    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    await asyncio.to_thread(_check_chromium)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(chromium: Any) -> AsyncIterator[Any]:
    context = await chromium.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    yield page
    await context.close()
