"""Fixtures every marketplace test file shares."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
async def http():
    """A plain httpx client for the adapters under test."""
    async with httpx.AsyncClient() as client:
        yield client
