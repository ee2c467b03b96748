"""Property: whatever JSON arrives, the validator returns a view or raises a 400 GatewayError."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.chat.params import PARAMS
from service.chat.validate import KNOWN_PARAMS, ChatRequestView, validate_chat_request
from service.errors import GatewayError

from .bodies import rich

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(
        ["", "function", "text", "user", "assistant", "tool", "json_schema", "xpay", "0.5", "auto"]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.text(max_size=12) | st.sampled_from([*sorted(KNOWN_PARAMS), "type", "function", "name", "role"]),
        children,
        max_size=4,
    ),
    max_leaves=12,
)

# Paths into the rich body where one value is swapped for arbitrary JSON: every top-level field
# plus the nested places with their own checks.
_NESTED_PATHS = [
    ("messages", 0),
    ("messages", 0, "content"),
    ("messages", 1, "content", 0),
    ("messages", 2, "content", 1, "image_url"),
    ("messages", 2, "content", 1, "image_url", "detail"),
    ("messages", 2, "content", 3, "input_audio"),
    ("messages", 3, "tool_calls"),
    ("messages", 3, "tool_calls", 0, "function"),
    ("messages", 3, "reasoning_content"),
    ("messages", 4, "tool_call_id"),
    ("messages", 5, "role"),
    ("tools", 0),
    ("tools", 0, "function", "name"),
    ("tools", 0, "function", "parameters"),
    ("tool_choice", "function"),
    ("response_format", "json_schema"),
    ("response_format", "json_schema", "name"),
    ("response_format", "type"),
    ("stream_options", "include_usage"),
    ("stream_options", "include_obfuscation"),
    ("reasoning", "effort"),
    ("reasoning", "max_tokens"),
    ("reasoning", "enabled"),
    ("prediction", "content"),
    ("modalities", 0),
    ("messages", 2, "content", 0, "prompt_cache_breakpoint"),
    ("provider", "order"),
    ("provider", "max_cost_usd"),
    ("provider", "sort"),
    ("logit_bias", "50256"),
    ("metadata", "team"),
    ("documents", 0),
    ("stop", 1),
    ("models", 0),
]
# Every parameter of the table, the refused ones too.
PATHS = [(name,) for name in sorted(PARAMS)] + [("unrecognized_field",)] + _NESTED_PATHS


def _judge(body: object) -> None:
    before = copy.deepcopy(body)
    try:
        view: ChatRequestView | GatewayError = validate_chat_request(body)
    except GatewayError as refused:
        view = refused
    if isinstance(view, GatewayError):
        error = view
        assert error.status == 400
        assert error.type == "invalid_request_error"
        assert error.code in {
            "invalid_type",
            "invalid_value",
            "missing_required_parameter",
            "unknown_parameter",
            "empty_string",
            "empty_array",
            "too_many",
            "string_too_long",
            "unsupported_parameter",
            "unsupported_value",
        }
        assert error.param is None or isinstance(error.param, str)
        error.encoded()  # the answer must serialize
    else:
        assert isinstance(view, ChatRequestView)
    # The body is never mutated. repr, not ==: a NaN anywhere in it is never equal to itself.
    assert repr(body) == repr(before)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values)
def test_any_json_body(body):
    _judge(body)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=json_values)
def test_any_value_in_any_field(path, value):
    body = rich()
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    _judge(body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(st.sampled_from(sorted(KNOWN_PARAMS)), json_values, max_size=6))
def test_any_combination_of_fields(fields):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    _judge(body)
