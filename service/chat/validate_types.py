"""Primitive checks shared by the chat-request validator, and the error codes it answers with.

Every check raises `GatewayError` (400, invalid_request_error) built by the helpers here, so the
codes and wording stay consistent across the validator's modules. The codes:

- ``invalid_type``: the JSON type is wrong (booleans are not integers, 5.0 is not an integer).
- ``invalid_value``: right type, wrong value (out of range, not one of the allowed values, not
  finite, a bad name, or a rule between two fields broken).
- ``missing_required_parameter``: a required key is absent or null.
- ``unknown_parameter``: a key the API does not define.
- ``empty_string``: a string that must not be empty is.
- ``empty_array``: an array that must not be empty is.
- ``too_many``: an array or object holds more items than allowed.
- ``string_too_long``: a string is longer than allowed.
- ``unsupported_parameter``: a parameter OpenAI defines that no route can honour (the message says
  why; `service.chat.params` lists them).
- ``unsupported_value``: a value of an accepted parameter that no route can honour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from service.errors import GatewayError, invalid
from service.input_limits import check_storable

INVALID_TYPE = "invalid_type"
INVALID_VALUE = "invalid_value"
MISSING = "missing_required_parameter"
UNKNOWN = "unknown_parameter"
EMPTY_STRING = "empty_string"
EMPTY_ARRAY = "empty_array"
TOO_MANY = "too_many"
STRING_TOO_LONG = "string_too_long"
UNSUPPORTED_PARAMETER = "unsupported_parameter"
UNSUPPORTED_VALUE = "unsupported_value"

# Error messages quote the client's values; cap them so a huge value cannot bloat the answer,
# and never quote free text (prompts) at all: only names, enum values and numbers.
_SHOW_CHARS = 64
_SHOW_INT_BITS = 100  # about 30 decimal digits


def type_name(value: object) -> str:
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "a boolean"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a decimal number"
    if kind is str:
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"an unsupported value ({kind.__name__})"


def show(value: object) -> str:
    """A short, safe rendering of a scalar for an error message."""
    if type(value) is int:
        # str() of a huge int is slow and, past 4300 digits, raises: say what it is instead.
        if value.bit_length() > _SHOW_INT_BITS:
            return "a very large integer"
        return str(value)
    if type(value) is float:
        return repr(value)
    if type(value) is str:
        if len(value) > _SHOW_CHARS:
            return repr(value[:_SHOW_CHARS]) + "…"
        return repr(value)
    return type_name(value)


def choices(allowed: Iterable[str]) -> str:
    items = [f"'{a}'" for a in allowed]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


def join(prefix: str, key: object) -> str:
    """The path of `key` under `prefix`; a client's long key name is cut (paths are echoed and logged)."""
    if isinstance(key, str):
        name = key if len(key) <= _SHOW_CHARS else key[:_SHOW_CHARS] + "…"
    else:
        name = show(key)
    return f"{prefix}.{name}" if prefix else name


def wrong_type(param: str, expected: str, value: object) -> GatewayError:
    return invalid(
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param,
        INVALID_TYPE,
    )


def bad_value(param: str, message: str) -> GatewayError:
    return invalid(f"Invalid value for '{param}': {message}", param, INVALID_VALUE)


def not_one_of(param: str, value: object, allowed: Iterable[str]) -> GatewayError:
    return bad_value(param, f"{show(value)}. Supported values are: {choices(allowed)}.")


def missing(param: str) -> GatewayError:
    return invalid(f"Missing required parameter: '{param}'.", param, MISSING)


def unknown(param: str) -> GatewayError:
    return invalid(f"Unrecognized request argument supplied: {param}", param, UNKNOWN)


def unsupported(param: str, why: str) -> GatewayError:
    return invalid(f"'{param}' is not supported by this gateway: {why}.", param, UNSUPPORTED_PARAMETER)


def unsupported_value(param: str, value: object, why: str) -> GatewayError:
    return invalid(f"Unsupported value for '{param}': {show(value)}; {why}.", param, UNSUPPORTED_VALUE)


def empty_string(param: str) -> GatewayError:
    return invalid(f"`{param}` cannot be empty", param, EMPTY_STRING)


def empty_array(param: str) -> GatewayError:
    return invalid(
        f"Invalid '{param}': empty array. Expected an array with at least 1 item.", param, EMPTY_ARRAY
    )


def too_many(param: str, limit: int, got: int, what: str = "items") -> GatewayError:
    return invalid(
        f"Invalid '{param}': too many {what}. Expected at most {limit}, but got {got}.", param, TOO_MANY
    )


def too_long(param: str, limit: int, got: int) -> GatewayError:
    return invalid(
        f"Invalid '{param}': string too long. Expected a string of at most {limit} characters, "
        f"but got {got}.",
        param,
        STRING_TOO_LONG,
    )


def check_keys(obj: Mapping[str, object], allowed: frozenset[str], prefix: str) -> None:
    """Reject the first key of `obj` that is not in `allowed`."""
    if obj.keys() <= allowed:
        return
    for key in obj:
        if key not in allowed:
            raise unknown(join(prefix, key))


def check_bool(value: object, param: str) -> bool:
    if type(value) is not bool:
        raise wrong_type(param, "a boolean", value)
    return value


def check_str(value: object, param: str, *, non_empty: bool = False, max_len: int | None = None,
              stored: bool = False) -> str:
    """A string; `stored` ones must also be text the database can hold (no NUL)."""
    if type(value) is not str:
        raise wrong_type(param, "a string", value)
    if non_empty and not value:
        raise empty_string(param)
    if max_len is not None and len(value) > max_len:
        raise too_long(param, max_len, len(value))
    if stored:
        check_storable(value, param)
    return value


# Floats hold every integer exactly only up to here; past it a float may be a rounded spelling of
# another integer (orjson reads integers beyond 64 bits as floats), so it is not taken as one.
_EXACT_FLOAT_INTS = 2**53


def as_int(value: object) -> int | None:
    """A JSON integer as Python reads it: an int, or a float with no fraction (5.0), which JSON
    Schema counts as the same integer; None for anything else (booleans included)."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer() and -_EXACT_FLOAT_INTS <= value <= _EXACT_FLOAT_INTS:
        return int(value)
    return None


def check_int(value: object, param: str, lo: int | None = None, hi: int | None = None) -> int:
    number = as_int(value)
    if number is None:
        if type(value) is float and value.is_integer():  # a whole number too big to read exactly
            if hi is not None and value > hi:
                raise bad_value(param, f"expected a value <= {hi}, but got {show(value)} instead.")
            if lo is not None and value < lo:
                raise bad_value(param, f"expected a value >= {lo}, but got {show(value)} instead.")
            raise bad_value(param, f"{show(value)} cannot be read as an exact integer; send it without a "
                                   "fraction or an exponent.")
        raise wrong_type(param, "an integer", value)
    value = number
    if lo is not None and value < lo:
        raise bad_value(param, f"expected a value >= {lo}, but got {show(value)} instead.")
    if hi is not None and value > hi:
        raise bad_value(param, f"expected a value <= {hi}, but got {show(value)} instead.")
    return value


def check_number(
    value: object,
    param: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
) -> int | float:
    # type() rather than isinstance: a bool is an int to Python but not a number to JSON.
    if type(value) is float:
        if not math.isfinite(value):
            raise bad_value(param, f"expected a finite number, but got {show(value)} instead.")
    elif type(value) is not int:
        raise wrong_type(param, "a number", value)
    if lo is not None:
        if lo_open and value <= lo:
            raise bad_value(param, f"expected a value > {lo}, but got {show(value)} instead.")
        if value < lo:
            raise bad_value(param, f"expected a value >= {lo}, but got {show(value)} instead.")
    if hi is not None and value > hi:
        raise bad_value(param, f"expected a value <= {hi}, but got {show(value)} instead.")
    return value


def check_object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    return value


def check_array(value: object, param: str, *, max_items: int | None = None, non_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise wrong_type(param, "an array", value)
    if non_empty and not value:
        raise empty_array(param)
    if max_items is not None and len(value) > max_items:
        raise too_many(param, max_items, len(value))
    return value


def check_enum(value: object, param: str, allowed: tuple[str, ...]) -> str:
    if type(value) is not str:
        raise wrong_type(param, "a string", value)
    if value not in allowed:
        raise not_one_of(param, value, allowed)
    return value
