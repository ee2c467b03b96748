"""The parameter table, `upstream_fields` and `reasoning_fields`: what reaches each upstream."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.catalog.loader import load_catalog
from service.catalog.model import Features
from service.chat.params import (
    ACCEPTED_PARAMS,
    MARKETPLACE_PARAMS,
    NOT_FORWARDED,
    PARAMS,
    Fate,
    reasoning_fields,
    upstream_fields,
    with_reasoning,
)
from service.chat.reasoning import EFFORT_BUDGETS, REASONING_EFFORTS, nearest_effort
from service.chat.validate import KNOWN_PARAMS, validate_chat_request
from service.chat.validate_params import stateless_checks
from service.routing import needs

from .bodies import assert_rejected, rich, with_fields

# Every top-level parameter of openai-python 3.54's CompletionCreateParams (the SDK installed
# here), plus `stream`: each must be in the table, none refused as unknown.
OPENAI_SDK_PARAMS = {
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options", "stream",
}


def test_the_installed_openai_sdk_sends_nothing_the_table_lacks():
    from openai.types.chat import completion_create_params

    fields = set(completion_create_params.CompletionCreateParamsBase.__annotations__) | {"stream"}
    assert fields == OPENAI_SDK_PARAMS, "the SDK changed: give each new parameter its row in PARAMS"
    assert fields <= set(PARAMS)


def test_every_row_has_exactly_one_check_and_every_check_a_row():
    from service.chat.validate import _FIELDS

    assert set(_FIELDS) == set(PARAMS)
    assert KNOWN_PARAMS == ACCEPTED_PARAMS == {n for n, p in PARAMS.items() if p.fate is not Fate.REFUSED}
    assert set(stateless_checks()) <= set(PARAMS)


def test_dropped_and_refused_rows_say_why():
    for name, param in PARAMS.items():
        if param.fate in (Fate.DROPPED, Fate.REFUSED, Fate.TRANSLATED):
            assert len(param.why) > 20, name


def test_routing_compares_against_the_table():
    # require_parameters: a marketplace route lacks what is neither sent to it nor sent nowhere.
    assert needs.MARKETPLACE_PARAMS == MARKETPLACE_PARAMS
    assert needs.GATEWAY_PARAMS == NOT_FORWARDED
    assert not (MARKETPLACE_PARAMS & NOT_FORWARDED)


@pytest.mark.parametrize("name", sorted(n for n, p in PARAMS.items() if p.fate is Fate.REFUSED))
def test_refused_parameters_say_why(name):
    assert_rejected(with_fields(**{name: {}}), name, PARAMS[name].why, "unsupported_parameter")


@pytest.mark.parametrize("name", sorted(n for n, p in PARAMS.items() if p.fate is Fate.REFUSED))
def test_a_null_refused_parameter_is_absent(name):
    assert validate_chat_request(with_fields(**{name: None})).sent_params == {"model", "messages"}


def test_upstream_fields_keeps_what_baseten_takes_and_nothing_else():
    body = rich()
    before = copy.deepcopy(body)
    out = upstream_fields(body)
    assert body == before, "the client's body is not changed"
    assert set(out) == {n for n in body if PARAMS[n].fate is Fate.EVERY_ROUTE}
    for dropped in ("metadata", "store", "service_tier", "prompt_cache_key", "prediction", "verbosity",
                    "modalities", "reasoning", "provider", "models", "safety_identifier"):
        assert dropped not in out
    assert out["stream_options"] == {"include_usage": True, "continuous_usage_stats": False}
    part = out["messages"][2]["content"][0]
    assert part == {"type": "text", "text": "What is in this picture and this clip?"}
    # Messages without a dropped key are shared, not copied.
    assert out["messages"][0] is body["messages"][0]
    assert out["tools"] is body["tools"]


def test_upstream_fields_of_a_plain_body_is_the_same_body():
    body = with_fields(temperature=0.5, stream=True, stream_options={"include_usage": True})
    out = upstream_fields(body)
    assert out == body
    assert out["messages"] is body["messages"]
    assert out["stream_options"] is body["stream_options"]


def test_upstream_fields_is_accepted_by_the_validator_again():
    # Whatever reaches an upstream is itself a valid request, with no dropped field left.
    out = upstream_fields(rich())
    view = validate_chat_request(out)
    assert not (view.sent_params & NOT_FORWARDED)


# ---- reasoning ------------------------------------------------------------------------------

OPT_IN = Features(reasoning="opt_in")
OPT_IN_EFFORTS = Features(reasoning="opt_in", reasoning_efforts=("none", "high", "max"))
DEFAULT_ON = Features(reasoning="default_on", reasoning_efforts=("low", "medium", "high"))
DEFAULT_ON_PLAIN = Features(reasoning="default_on")
ALWAYS_ON = Features(reasoning="always_on", reasoning_efforts=("low", "medium", "high"))
NO_REASONING = Features(reasoning="none")


@pytest.mark.parametrize(
    ("reasoning", "effort", "features", "expected"),
    [
        pytest.param(None, None, OPT_IN, {}, id="nothing-asked"),
        pytest.param({"exclude": True}, None, OPT_IN, {}, id="exclude-alone-changes-nothing-upstream"),
        pytest.param({"enabled": True}, None, OPT_IN, {"chat_template_args": {"enable_thinking": True}},
                     id="opt-in-on"),
        pytest.param({"enabled": False}, None, OPT_IN, {"chat_template_args": {"enable_thinking": False}},
                     id="opt-in-off"),
        pytest.param({"enabled": False}, None, OPT_IN_EFFORTS,
                     {"chat_template_args": {"enable_thinking": False}, "reasoning_effort": "none"},
                     id="opt-in-off-with-effort-none"),
        pytest.param({"effort": "high"}, None, OPT_IN, {"chat_template_args": {"enable_thinking": True}},
                     id="effort-turns-opt-in-on"),
        pytest.param(None, "high", OPT_IN, {"chat_template_args": {"enable_thinking": True}},
                     id="top-level-effort-turns-opt-in-on"),
        pytest.param({"effort": "medium"}, None, DEFAULT_ON, {"reasoning_effort": "medium"}, id="effort-taken"),
        pytest.param({"effort": "xhigh"}, None, DEFAULT_ON, {"reasoning_effort": "high"}, id="effort-nearest-up"),
        pytest.param({"effort": "minimal"}, None, ALWAYS_ON, {"reasoning_effort": "low"}, id="effort-nearest-down"),
        pytest.param({"effort": "medium"}, None, OPT_IN_EFFORTS,
                     {"chat_template_args": {"enable_thinking": True}, "reasoning_effort": "high"},
                     id="effort-nearest-skips-none"),
        pytest.param({"max_tokens": 1000}, None, DEFAULT_ON, {"reasoning_effort": "low"}, id="budget-low"),
        pytest.param({"max_tokens": 2500}, None, DEFAULT_ON, {"reasoning_effort": "medium"}, id="budget-medium"),
        pytest.param({"max_tokens": 60000}, None, DEFAULT_ON, {"reasoning_effort": "high"}, id="budget-high"),
        pytest.param({"max_tokens": 60000}, None, OPT_IN_EFFORTS,
                     {"chat_template_args": {"enable_thinking": True}, "reasoning_effort": "max"}, id="budget-max"),
        pytest.param({"max_tokens": 0}, None, DEFAULT_ON, {"reasoning_effort": "low"}, id="budget-zero-is-off"),
        pytest.param({"enabled": False}, None, DEFAULT_ON, {"reasoning_effort": "low"}, id="default-on-off-lowest"),
        pytest.param({"enabled": False}, None, ALWAYS_ON, {"reasoning_effort": "low"}, id="always-on-off-lowest"),
        pytest.param({"enabled": False}, None, DEFAULT_ON_PLAIN, {}, id="default-on-cannot-be-told"),
        pytest.param({"enabled": True}, None, DEFAULT_ON, {}, id="default-on-already-on"),
        pytest.param({"effort": "high"}, None, NO_REASONING, {}, id="no-reasoning-model"),
        pytest.param(None, "none", DEFAULT_ON, {"reasoning_effort": "low"}, id="top-level-none"),
    ],
)
def test_reasoning_fields(reasoning, effort, features, expected):
    assert reasoning_fields(reasoning, effort, features) == expected


def test_reasoning_fields_for_every_catalog_model_are_what_the_model_takes():
    catalog = load_catalog(None, None)
    asks = [({"enabled": True}, None), ({"enabled": False}, None), ({"effort": "max"}, None),
            ({"max_tokens": 3000}, None), (None, "low"), ({"effort": "none"}, None)]
    for model in catalog.models.values():
        f = model.features
        for reasoning, effort in asks:
            out = reasoning_fields(reasoning, effort, f)
            if f.reasoning == "none":
                assert out == {}
            if "reasoning_effort" in out:
                assert out["reasoning_effort"] in f.reasoning_efforts, (model.id, reasoning, out)
            if "chat_template_args" in out:
                assert f.reasoning == "opt_in", model.id


@given(budget=st.integers(min_value=1, max_value=262_144),
       efforts=st.sets(st.sampled_from(REASONING_EFFORTS[1:]), min_size=1).map(tuple))
def test_a_budget_maps_to_the_nearest_effort_on_a_log_scale(budget, efforts):
    chosen = nearest_effort(budget, efforts)
    assert chosen in efforts
    import math

    distance = abs(math.log2(EFFORT_BUDGETS[chosen]) - math.log2(budget))
    assert all(distance <= abs(math.log2(EFFORT_BUDGETS[e]) - math.log2(budget)) + 1e-12 for e in efforts)


def test_with_reasoning_merges_template_arguments():
    upstream = {"model": "m", "chat_template_args": {"documents_first": True}, "reasoning_effort": "low"}
    out = with_reasoning(upstream, {"chat_template_args": {"enable_thinking": True}, "reasoning_effort": "high"})
    assert out["chat_template_args"] == {"documents_first": True, "enable_thinking": True}
    assert out["reasoning_effort"] == "high"
    assert upstream["chat_template_args"] == {"documents_first": True}
    assert with_reasoning(upstream, {}) is upstream


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, {"wants_reasoning": False, "reasoning_off": False, "effective_effort": None,
                              "reasoning_budget": None, "exclude_reasoning": False}, id="nothing"),
        pytest.param({"reasoning": {"effort": "low"}}, {"wants_reasoning": True, "effective_effort": "low",
                                                            "reasoning_effort": None}, id="object-effort"),
        pytest.param({"reasoning": {"max_tokens": 5000}},
                     {"wants_reasoning": True, "effective_effort": "high", "reasoning_budget": 5000}, id="budget"),
        pytest.param({"reasoning": {"enabled": False, "exclude": True}},
                     {"wants_reasoning": False, "reasoning_off": True, "effective_effort": "none",
                          "exclude_reasoning": True}, id="off"),
        pytest.param({"reasoning": {"exclude": True}}, {"wants_reasoning": False, "reasoning_off": False,
                                                            "exclude_reasoning": True}, id="exclude-only"),
        pytest.param({"reasoning_effort": "medium"}, {"wants_reasoning": True, "effective_effort": "medium",
                                                          "reasoning_effort": "medium"}, id="top-level"),
        pytest.param({"reasoning_effort": "high", "reasoning": {"effort": "high"}},
                     {"effective_effort": "high", "reasoning_effort": "high"}, id="both-agree"),
        pytest.param({"chat_template_args": {"enable_thinking": False}},
                     {"wants_reasoning": False, "reasoning_off": True, "effective_effort": None}, id="template-off"),
        pytest.param({"chat_template_args": {"enable_thinking": True}, "reasoning": {"effort": "low"}},
                     {"wants_reasoning": True, "effective_effort": "low"}, id="template-agrees"),
    ],
)
def test_reasoning_in_the_view(fields, expected):
    view = validate_chat_request(with_fields(**fields))
    for name, value in expected.items():
        assert getattr(view, name) == value, name


@pytest.mark.parametrize(
    "fields",
    [
        {"store": False}, {"service_tier": "priority"}, {"service_tier": "a-tier-openai-adds-later"},
        {"prompt_cache_key": "k"}, {"prompt_cache_retention": "in_memory"},
        {"prompt_cache_options": {"mode": "explicit"}}, {"safety_identifier": "s"},
        {"prediction": {"type": "content", "content": [{"type": "text", "text": "x"}]}},
        {"modalities": ["text"]}, {"verbosity": "medium"}, {"parallel_tool_calls": True},
        {"logprobs": True, "top_logprobs": 5}, {"user": "u" * 512}, {"metadata": {"k" * 64: "v" * 512}},
        {"stream": True, "stream_options": {"include_obfuscation": True}},
    ],
    ids=",".join,
)
def test_current_sdk_parameters_are_accepted(fields):
    view = validate_chat_request(with_fields(**fields))
    assert set(fields) <= view.sent_params


def test_whole_floats_are_integers_and_upstreams_get_plain_integers():
    # JSON Schema reads 64.0 as the integer 64 (and schemathesis sends it so); engines want 64.
    body = with_fields(max_tokens=64.0, seed=7.0, top_k=-1.0, bad_token_ids=[1.0, 2], n=1.0,
                       logprobs=True, top_logprobs=3.0, reasoning={"max_tokens": 3000.0})
    view = validate_chat_request(body)
    assert view.max_output_tokens == 64 and type(view.max_output_tokens) is int
    assert view.reasoning_budget == 3000 and type(view.reasoning_budget) is int
    out = upstream_fields(body)
    for name in ("max_tokens", "seed", "top_k", "n", "top_logprobs"):
        assert type(out[name]) is int, name
    assert out["bad_token_ids"] == [1, 2] and all(type(v) is int for v in out["bad_token_ids"])
    assert body["max_tokens"] == 64.0 and type(body["max_tokens"]) is float, "the client's body is unchanged"


@pytest.mark.parametrize(("literal", "bound"), [(-(2**64), ">= "), (2**64, "<= "), (10**30, "<= ")])
def test_an_integer_past_64_bits_is_out_of_range_not_a_fraction(literal, bound):
    # orjson reads integers beyond 64 bits as floats; past 2**53 a float cannot say which integer it
    # was, but it was a whole number past the parameter's range, and the client is told that.
    import orjson

    body = orjson.loads(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":%d}' % literal)
    assert type(body["seed"]) is float
    assert_rejected(body, "seed", f"expected a value {bound}", "invalid_value")


def test_a_whole_float_past_exact_integers_but_within_range_is_refused_as_inexact():
    # One past int64 reads as the float -2**63, which equals the bound: in range, but not the integer sent.
    import orjson

    for literal in (b"-9223372036854775809", b"1.152921504606846977e18"):
        body = orjson.loads(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":%s}' % literal)
        assert_rejected(body, "seed", "cannot be read as an exact integer", "invalid_value")
