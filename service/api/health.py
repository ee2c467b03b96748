"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

from litestar import Response, get, head

from service.api.common import ApiRequest, json_response, runtime


@get("/", include_in_schema=False)
async def root() -> Response[bytes]:
    """What answers at the base URL clients are given (Claude Code checks it is reachable)."""
    return json_response({"service": "switchyard", "apis": ["/v1/chat/completions", "/v1/messages",
                                                            "/v1/responses", "/v1/models"]})


@head("/", include_in_schema=False)
async def root_head() -> None:
    return None


@get("/healthz")
async def healthz() -> Response[bytes]:
    return json_response({"status": "ok"})


@get("/readyz")
async def readyz(request: ApiRequest) -> Response[bytes]:
    rt = runtime(request)
    checks = {
        "catalog": bool(rt.catalog.models),
        "database": await rt.database_ok(),
        "accepting": rt.ready and not rt.draining,
    }
    ok = all(checks.values())
    return json_response({"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503)


@get("/metrics")
async def metrics(request: ApiRequest) -> Response[bytes]:
    rt = runtime(request)
    rt.metrics.usage_queue_depth.set(rt.ledger.depth)
    rt.observe_capacity()
    # Given whole as a header: Litestar would append a second charset to a text/* media type.
    return Response(content=rt.metrics.exposition(), media_type="text/plain",
                    headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"})
