"""Integers past what a JSON parser keeps exact (orjson reads one past 64 bits as a float): each
integer parameter refuses them as too large, naming its limit, and the published schemas state a
maximum for every integer a client sends, so what the schema admits the gateway accepts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.api.openapi import openapi_document
from service.catalog.loader import load_catalog

from .bodies import assert_rejected, minimal

HUGE = orjson.loads(b"113112264567186915328")  # what the gateway's parser makes of the JSON text


@pytest.mark.parametrize(("param", "limit"), [
    ("max_tokens", "<="), ("max_completion_tokens", "<="), ("truncate_prompt_tokens", "<="), ("top_k", "<="),
    ("min_tokens", "<="), ("top_logprobs", "<="), ("seed", "<="),
])
def test_a_huge_integer_is_refused_as_too_large(param, limit):
    assert isinstance(HUGE, float)
    body = {**minimal(), param: HUGE}
    if param == "top_logprobs":
        body["logprobs"] = True
    assert_rejected(body, param, f"expected a value {limit} ", "invalid_value")


def test_a_huge_negative_integer_is_refused_as_too_small():
    body = {**minimal(), "seed": orjson.loads(b"-113112264567186915328")}
    assert_rejected(body, "seed", "expected a value >= ", "invalid_value")


def test_a_decimal_number_is_still_a_wrong_type():
    assert_rejected({**minimal(), "max_tokens": 10.5}, "max_tokens", "expected an integer", "invalid_type")


def _unbounded_integers(node: Any, path: str, out: list[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer" and "maximum" not in node and "const" not in node and "enum" not in node:
            out.append(path)
        for key, value in node.items():
            if key in ("not", "if", "then", "else"):
                continue  # they only narrow a value the property's own schema bounds
            _unbounded_integers(value, f"{path}/{key}", out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _unbounded_integers(value, f"{path}/{i}", out)


def test_every_integer_a_client_sends_has_a_maximum_in_the_schema():
    document = openapi_document(load_catalog())
    schemas = document.get("components", {}).get("schemas", {})
    found: list[str] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                where = f"{method} {path} {parameter['name']}"
                _unbounded_integers(_resolve(parameter.get("schema", {}), schemas), where, found)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _unbounded_integers(_resolve(media.get("schema", {}), schemas), f"{method} {path} body", found)
    assert found == []


def _resolve(node: Any, schemas: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    """The schema with every local $ref replaced by what it names (a cycle is cut)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            return {} if name in seen else _resolve(schemas[name], schemas, seen | {name})
        return {key: _resolve(value, schemas, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, schemas, seen) for value in node]
    return node
