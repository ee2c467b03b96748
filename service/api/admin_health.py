"""/admin/routes: each route's health as this process sees it (with what a quoted route's charges
have taught, service.routing.quotes), and a manual reset of its circuit.

Circuits, failure windows and capacity slots are kept in each process's memory (service.routing.
health and capacity), not in the database: these endpoints read and reset the state of the process
that answers. With several workers behind one port, a reset reaches one of them; repeat it (or
restart) to reach every one. The answer names the process (`process_id`) so an operator can tell.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Request, Response, get, post

from service.api.admin_input import MAX_NAME, json_object
from service.api.common import json_response, optional_json_body, runtime
from service.auth.admin_token import admin_guard
from service.catalog.model import Route
from service.errors import GatewayError, invalid
from service.input_limits import check_storable, echo
from service.routing.capacity import CapacityBoard
from service.routing.health import HealthBoard
from service.routing.planner import capacity_group
from service.routing.quotes import QuoteAccuracy

AdminRequest = Request[Any, Any, Any]


def _capacity(board: CapacityBoard, route: Route) -> dict[str, Any]:
    group = capacity_group(route)
    keys = board.keys(group)
    concurrency = [k.concurrency for k in keys]
    rpm = [k.rpm for k in keys]
    return {
        "group": group,
        "route_in_flight": board.inflight(route.name),
        # A group's limits are its keys' (several for a pool of xpay keys); null is unlimited.
        "group_in_flight": sum(k.inflight for k in keys),
        "concurrency_limit": None if not keys or None in concurrency else sum(c or 0 for c in concurrency),
        "calls_last_minute": sum(k.recent_starts() for k in keys if k.rpm is not None),
        "rpm_limit": None if not keys or None in rpm else sum(r or 0 for r in rpm),
        "keys": len(keys),
        "has_room": board.has_room(group),
    }


def route_json(health: HealthBoard, board: CapacityBoard, route: Route,
               quotes: QuoteAccuracy | None = None) -> dict[str, Any]:
    status = health.status(route.name)
    return {
        "route": route.name, "model": route.model, "front_end": route.front_end,
        "circuit": status.circuit, "open_for_seconds": round(status.open_for_seconds, 3),
        "probing": status.probing, "recent_failures": status.recent_failures,
        "recent_attempts": status.recent_attempts, "window_seconds": health.config.window_seconds,
        "latency_seconds": status.latency_seconds, "ttft_seconds": status.ttft_seconds,
        "tokens_per_second": status.tokens_per_second, "capacity": _capacity(board, route),
        "quotes": quotes.record(route.name) if quotes is not None else None,
    }


def _listing(rt: Any, routes: list[Route]) -> dict[str, Any]:
    return {"object": "list", "scope": "process", "process_id": os.getpid(),
            "data": [route_json(rt.health, rt.capacity, r, rt.quote_accuracy) for r in routes]}


@get("/admin/routes", guards=[admin_guard])
async def list_routes(request: AdminRequest) -> Response[bytes]:
    rt = runtime(request)
    return json_response(_listing(rt, list(rt.catalog.routes)))


def _route_named(routes: tuple[Route, ...], body: dict[str, Any]) -> Route | None:
    name = body.get("route")
    if name is None:
        return None
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise invalid("`route` must be a route's name (`front_end:model`, as GET /admin/routes lists it), "
                      "or null for every route.", "route")
    check_storable(name, "route")
    for route in routes:
        if route.name == name:
            return route
    raise GatewayError(404, f"No route {echo(name)}; GET /admin/routes lists them.", type="not_found_error",
                       code="route_not_found", param="route")


@post("/admin/routes/reset", guards=[admin_guard], status_code=200)
async def reset_routes(request: AdminRequest) -> Response[bytes]:
    """Close the circuit of one route (`{"route": name}`) or of every route, on this process only."""
    rt = runtime(request)
    body = json_object(await optional_json_body(request), ("route",))
    routes = rt.catalog.routes
    route = _route_named(routes, body)
    rt.health.reset(route.name if route is not None else None)
    return json_response(_listing(rt, [route] if route is not None else list(routes)))


HEALTH_HANDLERS = [list_routes, reset_routes]
