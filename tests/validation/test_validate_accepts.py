"""Good chat-completions bodies: real recorded requests and a request using every field.

The recordings are the Baseten cassettes from maruel/genai (Apache-2.0, see the LICENSE beside
them); only their request bodies and response statuses are read here.
"""

from __future__ import annotations

import copy
import json
import timeit
from decimal import Decimal

import pytest
import yaml

from service.chat.validate import KNOWN_PARAMS, ChatRequestView, ProviderPrefs, validate_chat_request
from service.errors import GatewayError
from tests.cassettes import RECORDINGS

from .bodies import RICH_TEXT_CHARS, SQUARE_ROOT_TOOL, minimal, rich, with_fields


def _recorded_requests() -> list[tuple[str, dict, int, str]]:
    """(cassette name, request body, response status, response body) of every recorded POST."""
    found = []
    for path in sorted(RECORDINGS.glob("*.yaml")):
        cassette = yaml.safe_load(path.read_text())
        for interaction in cassette["interactions"]:
            request = interaction["request"]
            if request["method"] != "POST":
                continue
            body = json.loads(request["body"])
            response = interaction["response"]
            found.append((path.stem, body, response["code"], response["body"]))
    return found


def test_every_recorded_request_is_judged_as_the_upstream_judged_it():
    """Baseten accepted (or refused only for the key) every recorded body but one, which it
    refused for an empty json_schema.name: the validator must agree on each, with the same words."""
    requests = _recorded_requests()
    assert len(requests) == 4  # the fifth cassette, Warmup, is a GET /v1/models
    for name, body, status, response in requests:
        before = copy.deepcopy(body)
        if status == 400 and "Validation:" in response:
            with pytest.raises(GatewayError) as caught:
                validate_chat_request(body)
            assert caught.value.status == 400, name
            assert caught.value.message in response, name
            assert caught.value.param == "response_format.json_schema.name", name
        else:
            view = validate_chat_request(body)
            assert view.model == body["model"], name
        assert body == before, name


def _recorded(name_part: str) -> dict:
    matches = [body for name, body, _, _ in _recorded_requests() if name_part in name]
    assert len(matches) == 1
    return matches[0]


def test_recorded_streamed_tool_call_view():
    body = _recorded("gpt-oss-120b")
    view = validate_chat_request(body)
    assert view == ChatRequestView(
        model="openai/gpt-oss-120b",
        models=None,
        stream=True,
        include_usage=True,
        max_output_tokens=None,
        has_tools=True,
        tool_choice_required=True,
        response_format_kind=None,
        image_parts=0,
        audio_parts=0,
        reasoning_effort=None,
        wants_reasoning=False,
        stop_count=0,
        logprobs=False,
        provider=ProviderPrefs(),
        message_count=1,
        text_chars=len(body["messages"][0]["content"]),
        sent_params=frozenset(
            {"model", "messages", "stream", "stream_options", "tool_choice", "tools", "parallel_tool_calls"}
        ),
    )


def test_recorded_streamed_text_and_plain_views():
    streamed = validate_chat_request(_recorded("DeepSeek-V4-Pro"))
    assert (streamed.stream, streamed.include_usage, streamed.has_tools) == (True, True, False)
    assert streamed.text_chars == len("Say hello. Use only one word.")
    plain = validate_chat_request(_recorded("bad_apiKey"))
    assert (plain.model, plain.stream, plain.include_usage) == ("deepseek-ai/DeepSeek-V3.1", False, False)
    assert plain.sent_params == frozenset({"model", "messages"})
    assert plain.provider == ProviderPrefs()


def test_recorded_structured_output_validates_once_named():
    body = _recorded("GLM-5.2")
    body["response_format"]["json_schema"]["name"] = "banana"
    view = validate_chat_request(body)
    assert view.response_format_kind == "json_schema"
    assert view.wants_reasoning is True
    assert view.stream is False


def test_rich_request_using_every_field():
    body = rich()
    assert set(body) == KNOWN_PARAMS, "the rich body must exercise every known parameter"
    before = copy.deepcopy(body)
    view = validate_chat_request(body)
    assert body == before
    assert view == ChatRequestView(
        model="moonshotai/Kimi-K2.5",
        models=("moonshotai/Kimi-K2.5", "zai-org/GLM-5.2"),
        stream=True,
        include_usage=True,
        max_output_tokens=2048,  # max_completion_tokens wins over max_tokens
        has_tools=True,
        tool_choice_required=True,
        response_format_kind="json_schema",
        image_parts=2,
        audio_parts=1,
        reasoning_effort="high",
        wants_reasoning=True,
        stop_count=2,
        logprobs=True,
        provider=ProviderPrefs(
            order=("xpay", "baseten"),
            only=("xpay", "baseten", "orthogonal"),
            ignore=("orthogonal",),
            allow_fallbacks=False,
            require_parameters=True,
            sort="price",
            max_cost_usd=Decimal("0.1"),
        ),
        message_count=7,
        text_chars=RICH_TEXT_CHARS,
        sent_params=KNOWN_PARAMS,
        effective_effort="high",
        exclude_reasoning=True,
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"max_tokens": 100}, {"max_output_tokens": 100}, id="max-tokens"),
        pytest.param({"max_completion_tokens": 7}, {"max_output_tokens": 7}, id="max-completion-tokens"),
        pytest.param({"stop": "END"}, {"stop_count": 1}, id="stop-string"),
        pytest.param({"stop": []}, {"stop_count": 0}, id="stop-empty-list"),
        pytest.param({"stop": ["a"] * 32}, {"stop_count": 32}, id="stop-32"),
        pytest.param({"tools": [SQUARE_ROOT_TOOL], "tool_choice": "auto"},
                     {"has_tools": True, "tool_choice_required": False}, id="tool-choice-auto"),
        pytest.param({"tool_choice": "none"}, {"has_tools": False, "tool_choice_required": False},
                     id="tool-choice-none-without-tools"),
        pytest.param({"response_format": {"type": "json_object"}}, {"response_format_kind": "json_object"},
                     id="json-object"),
        pytest.param({"response_format": {"type": "text"}}, {"response_format_kind": "text"}, id="text"),
        pytest.param({"response_format": {"type": "grammar", "grammar": "root ::= 'a'"}},
                     {"response_format_kind": "grammar"}, id="grammar-extra-keys"),
        pytest.param({"response_format": {"type": "structural_tag", "structures": [], "triggers": []}},
                     {"response_format_kind": "structural_tag"}, id="structural-tag"),
        pytest.param({"reasoning_effort": "none"}, {"reasoning_effort": "none"}, id="effort-none"),
        pytest.param({"chat_template_args": {"enable_thinking": False}}, {"wants_reasoning": False},
                     id="thinking-off"),
        pytest.param({"chat_template_args": {"enable_thinking": "true"}}, {"wants_reasoning": False},
                     id="thinking-not-boolean"),
        pytest.param({"stream": True}, {"stream": True, "include_usage": False}, id="stream-no-options"),
        pytest.param({"stream": False}, {"stream": False}, id="stream-false"),
        pytest.param({"temperature": None, "tools": None, "stream": None},
                     {"sent_params": frozenset({"model", "messages"}), "stream": False},
                     id="nulls-are-absent"),
        pytest.param({"provider": {"max_cost_usd": "0.25"}},
                     {"provider": ProviderPrefs(max_cost_usd=Decimal("0.25"))}, id="max-cost-string"),
        pytest.param({"provider": {"max_cost_usd": 3}}, {"provider": ProviderPrefs(max_cost_usd=Decimal(3))},
                     id="max-cost-int"),
        pytest.param({"provider": {"max_cost_usd": 0.07}},
                     {"provider": ProviderPrefs(max_cost_usd=Decimal("0.07"))}, id="max-cost-float-exact"),
        pytest.param({"provider": {"only": ["orthogonal"], "sort": "latency"}},
                     {"provider": ProviderPrefs(only=("orthogonal",), sort="latency")}, id="provider-only"),
        pytest.param({"provider": {}}, {"provider": ProviderPrefs()}, id="provider-empty"),
        pytest.param({"models": ["a/b"]}, {"models": ("a/b",)}, id="models-one"),
        pytest.param({"logprobs": True, "top_logprobs": 0}, {"logprobs": True}, id="top-logprobs-zero"),
        pytest.param({"temperature": 0, "top_p": 1, "top_k": -1, "seed": -(2**63), "n": 1},
                     {"model": "openai/gpt-oss-120b"}, id="range-edges"),
        pytest.param({"temperature": 4.0, "min_p": 0, "max_tokens": 262_144},
                     {"max_output_tokens": 262_144}, id="upper-edges"),
    ],
)
def test_view_fields(fields, expected):
    view = validate_chat_request(with_fields(**fields))
    for name, value in expected.items():
        assert getattr(view, name) == value, name


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([{"role": "developer", "content": "Be exact."}, {"role": "user", "content": ""}],
                     id="developer-and-empty-content"),
        pytest.param([{"role": "user", "content": "x"},
                      {"role": "assistant", "content": "", "reasoning_content": "think"}],
                          id="assistant-empty"),
        pytest.param([{"role": "user", "content": "x"},
                      {"role": "assistant", "tool_calls": [
                          {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]},
                      {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "4"}]}],
                     id="tool-round-trip"),
        pytest.param([{"role": "user", "content": "x", "name": None}], id="null-optional-key"),
    ],
)
def test_message_shapes_accepted(messages):
    view = validate_chat_request(with_fields(messages=messages))
    assert view.message_count == len(messages)


def test_text_chars_counts_text_arguments_and_reasoning():
    body = with_fields(
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "abc"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y"}}]},
            {"role": "assistant", "content": "de", "reasoning_content": "fgh",
             "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "ijkl"},
        ]
    )
    view = validate_chat_request(body)
    assert view.text_chars == 3 + 2 + 3 + 2 + 4
    assert (view.image_parts, view.audio_parts) == (1, 0)


def test_views_are_immutable():
    view = validate_chat_request(minimal())
    with pytest.raises(AttributeError):
        view.model = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        view.provider.sort = "price"  # type: ignore[misc]


def test_typical_request_speed():
    """Prints the cost of one validation (the aim is well under 50 us); asserts only correctness."""
    body = {
        "model": "openai/gpt-oss-120b",
        "messages": [
            {"role": "system", "content": "You are a precise calculator."},
            {"role": "user", "content": "What is the square root of 132413?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call-1", "type": "function",
                 "function": {"name": "square_root", "arguments": '{"number": 132413}'}}]},
        ],
        "tools": [SQUARE_ROOT_TOOL],
        "tool_choice": "auto",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 512,
        "temperature": 0.2,
    }
    view = validate_chat_request(body)
    assert view.has_tools and view.stream and view.message_count == 3
    runs = 2000
    best = min(timeit.repeat(lambda: validate_chat_request(body), number=runs, repeat=5)) / runs
    print(f"\nvalidate_chat_request: {best * 1e6:.1f} us per typical 3-message request with tools")
