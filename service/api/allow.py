"""OPTIONS answered with every method a path serves.

Litestar builds a path's OPTIONS handler when the first handler of that path is registered and
keeps it when more are added, so `Allow` named only the first one's method (GET /admin/tenants
answered `Allow: OPTIONS, POST`). This layer answers OPTIONS from the final routes instead.
"""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.routes import HTTPRoute

from service.asgi import ASGIApp, Receive, Scope, Send, encode_headers


def route_methods(app: Litestar) -> list[tuple[re.Pattern[str], str]]:
    """(path pattern, Allow value) for every HTTP route of the app."""
    table = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        pattern = re.escape(route.path_format)
        for name, definition in route.path_parameters.items():
            # A `path` parameter spans slashes (model slugs hold one); others stop at one.
            segment = "(.+)" if definition.type.__name__ == "Path" else "([^/]+)"
            pattern = pattern.replace(re.escape("{" + name + "}"), segment)
        table.append((re.compile(pattern + "/?"), ", ".join(sorted(route.methods))))
    return table


def options_middleware(inner: ASGIApp, app: Litestar) -> ASGIApp:
    table = route_methods(app)

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            for pattern, allow in table:
                if pattern.fullmatch(scope["path"]):
                    headers = encode_headers({"allow": allow, "content-length": "0"})
                    await send({"type": "http.response.start", "status": 204, "headers": headers})
                    await send({"type": "http.response.body", "body": b""})
                    return
        await inner(scope, receive, send)

    return handler
