"""Webhook signatures, as Stripe signs its events: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`<t>.<raw body>`, keyed with the webhook's whole secret string. The timestamp inside the signed
bytes lets a receiver refuse replays older than its tolerance."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "Switchyard-Signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix every generated secret carries, not a secret
DEFAULT_TOLERANCE_SECONDS = 300


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for this body."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify(secret: str, header: str, body: bytes, *, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
           now: float | None = None) -> bool:
    """True when some v1 signature in the header matches and its timestamp is within tolerance."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
