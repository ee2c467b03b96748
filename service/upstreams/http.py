"""The shared upstream HTTP client: httpx's API over aiohttp's connection pool.

httpx's own pool collapses under concurrency (encode/httpx#3215). Measured here by
`python -m benchmarks.transport` at 32 requests in flight: httpx's pool 313 requests/s, httpx over
httpx-aiohttp's transport 1,937, httpx Requests sent straight to that transport (what the Baseten
adapter does) 2,594, raw aiohttp 5,231.
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

from service.settings import Timeouts


def create_transport(*, max_connections: int = 512) -> AiohttpTransport:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return AiohttpTransport(limits=limits, trust_env=False)


def timeout_extension(timeouts: Timeouts) -> dict[str, dict[str, float]]:
    """httpx's per-request timeout extension, for requests sent straight to a transport."""
    return {"timeout": {"connect": timeouts.connect, "read": timeouts.first_byte,
                        "write": timeouts.connect, "pool": timeouts.connect}}


def create_http_client(timeouts: Timeouts, *, transport: AiohttpTransport | None = None,
                       max_connections: int = 512) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport or create_transport(max_connections=max_connections),
        # read applies between received chunks; first byte and whole-call limits are enforced
        # by the adapters with asyncio deadlines, which httpx's per-read timeout cannot express.
        timeout=httpx.Timeout(connect=timeouts.connect, read=timeouts.first_byte, write=timeouts.connect, pool=timeouts.connect),
        follow_redirects=False,
        trust_env=False,
    )
