"""Validation the admin API and the CLI share: every bad value is a 400 naming its field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from service.api.common import ApiRequest, runtime
from service.catalog.model import Catalog
from service.chat.validate_types import as_int
from service.errors import GatewayError, invalid
from service.gateway.attribution import MAX_METADATA_KEY_CHARS, MAX_METADATA_PAIRS, MAX_METADATA_VALUE_CHARS
from service.input_limits import check_storable, echo

MAX_NAME = 200


def database(request: ApiRequest) -> asyncpg.Pool:
    pool: asyncpg.Pool | None = runtime(request).pool
    if pool is None:
        raise GatewayError(503, "The database is unavailable; try again shortly.", type="server_error",
                           code="database_unavailable", headers={"retry-after": "5"})
    return pool


def json_object(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, code="invalid_json")
    for name in body:
        if name not in allowed:
            raise invalid(f"Unknown field {echo(name)}; expected some of {', '.join(allowed)}.", name,
                          code="unknown_parameter")
    return body


def decimal_value(value: Any, param: str, *, integer_digits: int, places: int) -> Decimal:
    """A non-negative decimal from a JSON string or number that fits its NUMERIC column exactly."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise invalid(f"`{param}` must be a non-negative decimal (a string such as \"0.25\" or a number).",
                      param)
    shown = echo(value) if isinstance(value, str) else "a number out of range"
    if isinstance(value, str) and len(value) > 100:
        raise invalid(f"`{param}` must be a non-negative decimal, got {shown}.", param)
    try:
        # A JSON number arrives as float: its shortest repr is what the client wrote.
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise invalid(f"`{param}` must be a non-negative decimal, got {shown}.", param) from None
    if not number.is_finite() or number < 0:
        raise invalid(f"`{param}` must be a non-negative decimal, got {shown}.", param)
    if number >= Decimal(10) ** integer_digits:
        raise invalid(f"`{param}` must be less than {10 ** integer_digits}.", param)
    try:
        exact = number == number.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        exact = False
    if not exact:
        raise invalid(f"`{param}` takes at most {places} decimal places.", param)
    return number


def name_value(value: Any, param: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME or value != value.strip():
        raise invalid(f"`{param}` must be a non-empty string of at most {MAX_NAME} characters, without"
                      " surrounding spaces.", param)
    return check_storable(value, param)


def string_list(value: Any, param: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"`{param}` must be a list of strings.", param)
    for item in value:
        check_storable(item, param)
    return list(dict.fromkeys(value))


def listed(values: list[str]) -> str:
    """Client values quoted in a message: a few, each bounded."""
    shown = ", ".join(echo(v) for v in values[:5])
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def path_ref(value: str, param: str) -> str:
    """A tenant, key, project or budget reference from the path: text the database can compare."""
    return check_storable(value, param)


def models_list(value: Any, catalog: Catalog, param: str = "allowed_models") -> list[str] | None:
    """An allow-list of models and pools the catalog knows; None allows every model."""
    if value is None:
        return None
    models = string_list(value, param)
    unknown = [m for m in models if m not in catalog.models and m not in catalog.pools]
    if unknown:
        raise invalid(f"Unknown model or pool in `{param}`: {listed(unknown)}.", param,
                      code="model_not_found")
    return models


def optional_limit(value: Any, param: str) -> int | None:
    if value is None:
        return None
    number = as_int(value)  # 5.0 is the integer 5, as JSON Schema reads it
    if number is None or not 0 < number < 2**31:
        raise invalid(f"`{param}` must be a positive integer or null.", param)
    return number


def optional_instant(value: Any, param: str) -> datetime | None:
    """An ISO 8601 date-time (UTC when it names no offset), or null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"`{param}` must be an ISO 8601 date-time or null.", param)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"`{param}` must be an ISO 8601 date-time, got {echo(value)}.", param) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def metadata_pairs(value: Any, param: str = "metadata") -> dict[str, str] | None:
    """String pairs within the bounds OpenAI sets on a request's `metadata` (keys' metadata too)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"`{param}` must be an object of string values, or null.", param)
    if len(value) > MAX_METADATA_PAIRS:
        raise invalid(f"`{param}` takes at most {MAX_METADATA_PAIRS} pairs, got {len(value)}.", param)
    for key, item in value.items():
        if not key or len(key) > MAX_METADATA_KEY_CHARS:
            raise invalid(f"`{param}` keys are 1 to {MAX_METADATA_KEY_CHARS} characters.", param)
        check_storable(key, param)
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_CHARS:
            raise invalid(f"`{param}.{echo(key)}` must be a string of at most {MAX_METADATA_VALUE_CHARS} "
                          "characters.", f"{param}.{key}")
        check_storable(item, f"{param}.{key}")
    return dict(value)
