"""Upstream HTTP clients: aiohttp for Baseten (every request's path), httpx's API over aiohttp's
pool for the marketplaces (the MCP client and Orthogonal's adapter speak httpx).

httpx's own pool collapses under concurrency (encode/httpx#3215). Measured by
`python -m benchmarks.transport` (one client process against nginx, 32 requests in flight): httpx's
pool 812 requests/s, httpx over httpx-aiohttp's transport 3,972, httpx Requests sent straight to
that transport 7,382, aiohttp directly 15,247 (0.11 ms of client CPU a request at one in flight,
against 0.20 ms for the httpx Requests).
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from service.settings import Timeouts


def create_transport(*, max_connections: int = 512) -> AiohttpTransport:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return AiohttpTransport(limits=limits, trust_env=False)


def create_session(*, max_connections: int = 512) -> aiohttp.ClientSession:
    """Baseten's session; call inside the event loop that will use it."""
    connector = aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def create_http_client(timeouts: Timeouts, *, transport: AiohttpTransport | None = None,
                       max_connections: int = 512) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport or create_transport(max_connections=max_connections),
        # read applies between received chunks; first byte and whole-call limits are enforced
        # by the adapters with asyncio deadlines, which httpx's per-read timeout cannot express.
        timeout=httpx.Timeout(connect=timeouts.connect, read=timeouts.first_byte, write=timeouts.connect,
                              pool=timeouts.connect),
        follow_redirects=False,
        trust_env=False,
    )
