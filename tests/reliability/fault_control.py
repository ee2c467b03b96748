"""Arming stand-in faults and reading the ledger for the upstream-fault tests."""

from __future__ import annotations

import asyncio
import socket

import httpx

from tests.support import wait_for_rows

CHAT_PATH = "/v1/chat/completions"
ROWS_SQL = "SELECT * FROM usage_events WHERE request_id = $1 ORDER BY attempt"


def arm(standins, spec: str, *, model: str | None = None, times: int = 1) -> None:
    """Make the Baseten stand-in answer the next `times` matching chat calls with `spec`."""
    match = {"path": CHAT_PATH, **({"model": model} if model else {})}
    httpx.post(standins.servers["baseten"].url + "/__control/faults",
               json={"match": match, "fault": spec, "times": times}, timeout=5).raise_for_status()


def ledger_rows(database_url: str, request_id: str, expected: int) -> list:
    """The request's usage rows by attempt, once `expected` of them have landed (or the wait ends)."""
    return asyncio.run(wait_for_rows(database_url, ROWS_SQL, expected, request_id))


def closed_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
