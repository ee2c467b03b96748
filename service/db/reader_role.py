"""The read-only role Grafana's Postgres data source logs in as.

Migration 0007 creates the role without a password (it cannot log in) and grants it SELECT on
exactly what the dashboards read. `switchyard migrate` gives it its password on every run when
SWITCHYARD_GRAFANA_READER_PASSWORD is set, so a rotated secret takes effect with the next
migration Job. The password is sent as a SCRAM-SHA-256 verifier computed here, as psql's
`\\password` does: the plain text never reaches the server or its statement log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from service.db.pool import Conn

READER_ROLE = "switchyard_grafana"
PASSWORD_ENV = "SWITCHYARD_GRAFANA_READER_PASSWORD"  # noqa: S105 - the variable's name
MIN_PASSWORD_LENGTH = 16
SCRAM_ITERATIONS = 4096  # Postgres' own default (scram_iterations)


class ReaderPasswordError(ValueError):
    """The password cannot be used as given."""


def check_password(password: str) -> None:
    # Postgres runs SASLprep on non-ASCII passwords before hashing; printable ASCII is what it
    # leaves unchanged, so the verifier computed here is the one the server would compute.
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ReaderPasswordError(f"{PASSWORD_ENV} must be at least {MIN_PASSWORD_LENGTH} characters")
    if not all("!" <= c <= "~" for c in password):
        raise ReaderPasswordError(f"{PASSWORD_ENV} must be printable ASCII without spaces")
    if "REPLACE_ME" in password:
        raise ReaderPasswordError(f"{PASSWORD_ENV} is still the example's placeholder")


def scram_sha256_verifier(password: str, *, salt: bytes | None = None,
                          iterations: int = SCRAM_ITERATIONS) -> str:
    """The `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey` form pg_authid stores (RFC 5803)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


async def set_reader_password(conn: Conn, password: str) -> None:
    """Let the reader role log in with this password (idempotent; run by `switchyard migrate`)."""
    check_password(password)
    # ALTER ROLE takes no bind parameters: the server quotes the name and the verifier itself.
    statement: str = await conn.fetchval(
        "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)",
        READER_ROLE, scram_sha256_verifier(password),
    )
    await conn.execute(statement)
