"""The console's request checks: the session cookie, where a request comes from, the anti-CSRF header.

The cookie is HttpOnly, SameSite=Strict, scoped to /console and Secure whenever the request came
over TLS (directly, or through a proxy that says so in X-Forwarded-Proto). A change (sign-in,
sign-out) must carry the anti-CSRF header -- a custom header, which a cross-origin page cannot
send without a CORS preflight this server never grants -- and, once signed in, its value must be
the session's token. Any console request a browser marks as coming from another site or origin is
refused, whatever it asks for.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import Cookie

from service.api.admin_input import database
from service.api.common import runtime
from service.console import sessions
from service.console.sessions import ConsoleSession
from service.errors import GatewayError

COOKIE = "switchyard_console"
COOKIE_PATH = "/console"
CSRF_HEADER = "x-switchyard-csrf"
ConsoleRequest = Request[Any, Any, Any]


def over_tls(request: ConsoleRequest) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def session_cookie(request: ConsoleRequest, session_id: str) -> Cookie:
    # No Max-Age: the browser drops it when it closes; the server's expiry holds either way.
    return Cookie(key=COOKIE, value=session_id, path=COOKIE_PATH, httponly=True, samesite="strict",
                  secure=over_tls(request))


def cleared_cookie(request: ConsoleRequest) -> Cookie:
    return Cookie(key=COOKIE, value="", path=COOKIE_PATH, max_age=0, expires=0, httponly=True,
                  samesite="strict", secure=over_tls(request))


def _forbidden(message: str, code: str) -> GatewayError:
    return GatewayError(403, message, type="permission_error", code=code)


def _own_origins(request: ConsoleRequest) -> set[str]:
    schemes = {request.url.scheme, "https" if over_tls(request) else request.url.scheme}
    hosts = {h for h in (request.headers.get("host"), request.headers.get("x-forwarded-host")) if h}
    return {f"{scheme}://{host.split(',')[0].strip().lower()}" for scheme in schemes for host in hosts}


def check_origin(request: ConsoleRequest) -> None:
    """Refuse what a browser says came from another site or origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise _forbidden("The console answers its own pages only.", "cross_origin_refused")
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() not in _own_origins(request):
        raise _forbidden("The console answers its own pages only.", "cross_origin_refused")


def check_change(request: ConsoleRequest, session_id: str | None) -> None:
    """A sign-in or sign-out: same origin, with the anti-CSRF header (the session's token once signed in)."""
    check_origin(request)
    presented = request.headers.get(CSRF_HEADER)
    if not presented or (session_id is not None and not sessions.csrf_matches(session_id, presented)):
        raise _forbidden(f"Send the console's anti-CSRF token in `{CSRF_HEADER}`.", "csrf_failed")


def session_id_of(request: ConsoleRequest) -> str | None:
    value = request.cookies.get(COOKIE)
    # A token_urlsafe(32) is 43 characters; anything far off is not ours.
    return value if value and len(value) <= 128 else None


def not_signed_in(request: ConsoleRequest) -> GatewayError:
    """401; a cookie that named no live session is cleared with it."""
    headers = {}
    if request.cookies.get(COOKIE) is not None:
        headers["set-cookie"] = cleared_cookie(request).to_header(header="")
    return GatewayError(401, "Sign in to the console.", type="authentication_error", code="console_signed_out",
                        headers=headers)


async def current_session(request: ConsoleRequest) -> tuple[str, ConsoleSession]:
    """(the session id, the session) of a signed-in request; 401 otherwise."""
    check_origin(request)
    session_id = session_id_of(request)
    if session_id is None:
        raise not_signed_in(request)
    session = await sessions.resolve(database(request), session_id, runtime(request).settings.admin_token)
    if session is None:
        raise not_signed_in(request)
    return session_id, session
