"""Liveness, readiness and the Prometheus endpoint.

/metrics tells more than a client should see (routes, tenants' budgets, balances): an operator can
require a bearer token for it (SWITCHYARD_METRICS_TOKEN) or move it to a port of its own
(SWITCHYARD_METRICS_PORT, served by `serve`'s master process), and then the public port has none.
"""

from __future__ import annotations

import hmac

from litestar import Response, get, head
from litestar.exceptions import NotFoundException

from service.api.common import ApiRequest, json_response, runtime
from service.errors import GatewayError


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
    if rt.settings.metrics_port is not None:
        raise NotFoundException()  # as for any path this port does not serve
    if (token := rt.settings.metrics_token) is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Constant time: how much of a guess matched must not show in how long the answer took.
        if not (scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())):
            raise GatewayError(401, "The metrics need `Authorization: Bearer <SWITCHYARD_METRICS_TOKEN>`.",
                               type="authentication_error", code="invalid_metrics_token",
                               headers={"www-authenticate": "Bearer"})
    rt.refresh_gauges()
    # Given whole as a header: Litestar would append a second charset to a text/* media type.
    return Response(content=rt.metrics.exposition(), media_type="text/plain",
                    headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"})
