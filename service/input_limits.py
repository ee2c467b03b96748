"""Limits every client input meets at the edge, before anything recursive or the database sees it.

- JSON nesting: orjson decodes up to 1024 levels but encodes only 255, and the body is re-encoded
  on its way upstream (deeper still inside the marketplaces' envelopes), so a body nested a few
  hundred levels deep used to parse and then fail as a 500. `check_depth` bounds it right after
  decoding, iteratively, so no recursion limit is ever reached.
- Text the database stores: Postgres refuses NUL in text (asyncpg raises
  CharacterNotInRepertoireError) and asyncpg cannot encode lone surrogates, which path and query
  decoding can produce. `check_storable` refuses both with a 400 naming the field.
- Echoes: error messages and log lines quote client strings through `echo`, bounded in length.
"""

from __future__ import annotations

from service.errors import GatewayError, invalid

# Deep enough for any real tool or response schema (OpenAI's strict schemas allow 10 levels of
# nesting, each two JSON levels), far below orjson's encoding limit of 255 with room for the
# marketplaces' envelopes around the body.
MAX_JSON_DEPTH = 64
ECHO_CHARS = 64


def check_depth(value: object, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise 400 invalid_json when decoded JSON nests deeper than `limit` containers.

    Level by level, never recursing: each pass keeps only the containers of the next level."""
    level: list[dict[object, object] | list[object]] = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            raise GatewayError(
                400, f"The request body nests JSON more than {limit} levels deep.", code="invalid_json"
            )
        deeper: list[dict[object, object] | list[object]] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            deeper.extend(c for c in children if type(c) is dict or type(c) is list)
        level = deeper


def quick_depth_bound(raw: bytes) -> int:
    """An upper bound of the nesting depth of the JSON in `raw`, counted in C: every container
    opens with a bracket, so there cannot be more levels than brackets (strings included)."""
    return raw.count(b"[") + raw.count(b"{")


def storable_problem(value: str) -> str | None:
    """Why Postgres would refuse this text, or None when it can be stored."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def check_storable(value: str, param: str) -> str:
    """`value` unchanged, or a 400 naming `param` when the database could not store it."""
    problem = storable_problem(value)
    if problem is not None:
        raise invalid(f"Invalid value for '{param}': {problem}.", param, "invalid_value")
    return value


def echo(value: str, limit: int = ECHO_CHARS) -> str:
    """A client string quoted in a message or a log line: repr'd (so control characters show as
    escapes) and cut to `limit` characters."""
    if len(value) > limit:
        return repr(value[:limit]) + "…"
    return repr(value)
