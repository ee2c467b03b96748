"""Values that conform to a JSON schema, for the fake engine's structured outputs and tool arguments.

It covers what chat requests use in practice: objects, arrays, the scalar types, enum, const and the
first branch of anyOf/oneOf/allOf. It is not a general schema solver.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
    "et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip "
    "ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla "
    "pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim "
    "id est laborum"
).split()


def value_for_schema(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value conforming to a (simple) JSON schema: objects, arrays, scalars, enum, const, anyOf."""
    if not isinstance(schema, Mapping):
        return rng.choice(LOREM)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return value_for_schema(options[0], rng, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        if depth > 6:
            return dict.fromkeys(schema.get("required", ()))
        return {name: value_for_schema(sub, rng, depth + 1) for name, sub in props.items()}
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = max(low, min(int(schema.get("maxItems", low + 2)), low + 2))
        return [value_for_schema(schema.get("items"), rng, depth + 1) for _ in range(rng.randint(low, high))]
    if kind == "integer":
        low = math.ceil(schema.get("minimum", 0))
        return rng.randint(low, max(low, math.floor(schema.get("maximum", low + 1000000))))
    if kind == "number":
        floor = float(schema.get("minimum", 0))
        return round(rng.uniform(floor, float(schema.get("maximum", floor + 1000))), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    text = " ".join(rng.choice(LOREM) for _ in range(rng.randint(1, 3)))
    low = int(schema.get("minLength", 0))
    if len(text) < low:
        text = (text + " ") * (low // max(1, len(text)) + 1)
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text
