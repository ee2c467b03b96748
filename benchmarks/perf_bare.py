"""The floor the gateway is measured against: a bare pass-through on the gateway's own stack.

A Litestar app on granian (the same worker count, uvloop, no access log) that forwards the
request body to the same upstream with aiohttp and answers with what came back: no auth, no
validation, no routing, no metering, no metrics, no logs. A streamed answer is relayed as its
bytes arrive, without parsing the events. Whatever Switchyard spends beyond this app is the price
of its features; the benchmark reports Switchyard's figures as ratios and differences to it.

Started by the benchmark as `python -m benchmarks.perf_bare --port N --workers W` with
BARE_UPSTREAM_URL (the upstream's origin) and BARE_UPSTREAM_KEY in the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import aiohttp
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.response import Response, Stream

UPSTREAM_ENV = "BARE_UPSTREAM_URL"
KEY_ENV = "BARE_UPSTREAM_KEY"
CHAT = "/v1/chat/completions"


async def _open_session(app: Litestar) -> None:
    # One pool per worker for the whole run, like the gateway's upstream client.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=120)
    app.state.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


async def _close_session(app: Litestar) -> None:
    session: aiohttp.ClientSession | None = getattr(app.state, "session", None)
    if session is not None:
        await session.close()


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.release()


@post(CHAT, status_code=200)
async def chat(request: Request[object, object, State], state: State) -> Response[bytes] | Stream:
    body = await request.body()
    session: aiohttp.ClientSession = state.session
    response = await session.post(state.upstream, data=body, headers=state.headers)
    if response.content_type == "text/event-stream":
        return Stream(_relay(response), status_code=response.status, media_type="text/event-stream")
    try:
        content = await response.read()
    finally:
        response.release()
    return Response(content, status_code=response.status, media_type=response.content_type)


@get("/readyz", status_code=200)
async def readyz() -> bytes:
    return b"ok"


def app_from_env() -> Litestar:
    upstream = os.environ[UPSTREAM_ENV].rstrip("/")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {os.environ.get(KEY_ENV, '')}"}
    return Litestar(
        route_handlers=[chat, readyz],
        on_startup=[_open_session],
        on_shutdown=[_close_session],
        state=State({"upstream": upstream + CHAT, "headers": headers}),
        openapi_config=None,
    )


def serve(host: str, port: int, workers: int) -> None:
    """granian as `switchyard serve` runs it (service.cli.serve_forever), minus the metrics directory."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        "benchmarks.perf_bare:app_from_env",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        log_access=False,
        backlog=2048,
    ).serve()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf_bare", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if UPSTREAM_ENV not in os.environ:
        p.error(f"{UPSTREAM_ENV} must name the upstream's origin, e.g. http://127.0.0.1:8080")
    serve(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
