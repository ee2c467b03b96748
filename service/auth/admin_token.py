"""The operator's admin token: a Litestar guard for every /admin route.

Both sides are hashed before the constant-time comparison so a wrong token of a different
length takes the same path as one of the right length (compare_digest alone leaks length).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import GatewayError

DISABLED_MESSAGE = "admin API disabled: set SWITCHYARD_ADMIN_TOKEN"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def check_admin_token(configured: str | None, authorization: str | None) -> None:
    """Raise the OpenAI-shaped error a request with this Authorization header deserves, or return."""
    if not configured:
        raise GatewayError(403, DISABLED_MESSAGE, type="permission_error", code="admin_disabled")
    if not authorization:
        raise GatewayError(401, "Send the admin token as `Authorization: Bearer <token>`.",
                           type="authentication_error", code="missing_admin_token")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(_digest(presented.strip()), _digest(configured)):
        raise GatewayError(401, "Incorrect admin token.", type="authentication_error",
                           code="invalid_admin_token")


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    settings = connection.app.state.runtime.settings
    check_admin_token(settings.admin_token, connection.headers.get("authorization"))
