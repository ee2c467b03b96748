"""The edge limits: JSON depth measured without recursion, text the database can store, echoes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.api.common import decode_json
from service.errors import MAX_PARAM_CHARS, GatewayError, invalid
from service.input_limits import MAX_JSON_DEPTH, check_depth, check_storable, echo, quick_depth_bound

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=40,
)


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


@given(value=json_values, limit=st.integers(min_value=0, max_value=8))
def test_check_depth_refuses_exactly_what_is_deeper_than_the_limit(value, limit):
    deep = depth_of(value) > limit
    if deep:
        with pytest.raises(GatewayError) as refused:
            check_depth(value, limit)
        assert (refused.value.status, refused.value.code) == (400, "invalid_json")
    else:
        check_depth(value, limit)


@given(value=json_values)
def test_the_bracket_count_bounds_the_depth(value):
    assert quick_depth_bound(orjson.dumps(value)) >= depth_of(value)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 255, 256, 1000])
def test_decoding_refuses_what_orjson_could_not_encode_again(depth):
    raw = b'{"a":' * depth + b"1" + b"}" * depth
    if depth <= MAX_JSON_DEPTH:
        orjson.dumps(decode_json(raw))  # the upstream body is re-encoded: it must encode
    else:
        with pytest.raises(GatewayError) as caught:
            decode_json(raw)
        assert caught.value.code == "invalid_json"


def test_a_very_deep_body_is_refused_without_recursion():
    depth = 1000  # under orjson's own limit of 1024: decoding succeeds, so the walk must not recurse
    value = orjson.loads(b"[" * depth + b"]" * depth)
    with pytest.raises(GatewayError):
        check_depth(value)


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "\ud800", "x\udfff"])
def test_text_postgres_refuses_is_a_400_naming_the_field(text):
    with pytest.raises(GatewayError) as caught:
        check_storable(text, "name")
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, "name", "invalid_value")


@pytest.mark.parametrize("text", ["", "plain", "é中文🙂", "'; DROP TABLE t; --", "\x01\x7f"])
def test_storable_text_passes_unchanged(text):
    assert check_storable(text, "name") is text


def test_echoes_and_params_are_bounded():
    assert len(echo("x" * 100_000)) < 80
    assert echo("a\x00") == repr("a\x00")
    assert len(invalid("m", "p" * 100_000).param) <= MAX_PARAM_CHARS + 1
