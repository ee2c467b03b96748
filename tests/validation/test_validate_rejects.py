"""Bad chat-completions bodies: each gets a 400 naming the parameter, with the right code."""

from __future__ import annotations

import pytest

from service.chat.validate import validate_chat_request
from service.errors import GatewayError

from .bodies import assert_rejected, minimal, rich, tool, with_fields
from .test_validate_rejects_messages import MESSAGE_CASES

TOOLS = [tool("square_root")]


def _json_schema(**spec: object) -> dict:
    return {"type": "json_schema", "json_schema": spec}


def _without(key: str) -> dict:
    body = minimal()
    del body[key]
    return body


def _rich_with(path: tuple, value: object) -> dict:
    body = rich()
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


# (id, body, param, message fragment, code); every row answers status 400.
CASES = [
    # The body itself.
    ("body-array", [], None, "must be a JSON object", "invalid_type"),
    ("body-string", "hello", None, "must be a JSON object", "invalid_type"),
    ("body-null", None, None, "must be a JSON object", "invalid_type"),
    # model and models.
    ("model-missing", _without("model"), "model", "Missing required parameter: 'model'",
     "missing_required_parameter"),
    ("model-null", with_fields(model=None), "model", "Missing required parameter",
     "missing_required_parameter"),
    ("model-empty", with_fields(model=""), "model", "`model` cannot be empty", "empty_string"),
    ("model-int", with_fields(model=5), "model", "expected a string, but got an integer", "invalid_type"),
    ("models-empty", with_fields(models=[]), "models", "empty array", "empty_array"),
    ("models-too-many", with_fields(models=["m"] * 11), "models", "at most 10", "too_many"),
    ("models-empty-slug", with_fields(models=["a", ""]), "models[1]", "cannot be empty", "empty_string"),
    ("models-string", with_fields(models="a"), "models", "expected an array", "invalid_type"),
    # Unknown top-level parameters.
    ("service-tier-number", with_fields(service_tier=1), "service_tier",
     "expected a string, but got an integer", "invalid_type"),
    ("unknown-null", with_fields(foo=None), "foo", "Unrecognized request argument supplied: foo",
     "unknown_parameter"),
    ("functions", with_fields(functions=[]), "functions", "deprecated by OpenAI; send `tools` instead",
     "unsupported_parameter"),
    # Sampling and length parameters.
    ("temperature-high", with_fields(temperature=4.5), "temperature", "expected a value <= 4, but got 4.5",
     "invalid_value"),
    ("temperature-negative", with_fields(temperature=-0.1), "temperature", "expected a value >= 0",
     "invalid_value"),
    ("temperature-string", with_fields(temperature="1"), "temperature",
     "expected a number, but got a string", "invalid_type"),
    ("temperature-bool", with_fields(temperature=True), "temperature", "but got a boolean", "invalid_type"),
    ("temperature-nan", with_fields(temperature=float("nan")), "temperature", "expected a finite number",
     "invalid_value"),
    ("temperature-inf", with_fields(temperature=float("inf")), "temperature", "expected a finite number",
     "invalid_value"),
    ("top-p-zero", with_fields(top_p=0), "top_p", "expected a value > 0", "invalid_value"),
    ("top-p-high", with_fields(top_p=1.5), "top_p", "expected a value <= 1", "invalid_value"),
    ("max-tokens-zero", with_fields(max_tokens=0), "max_tokens", "expected a value >= 1", "invalid_value"),
    ("max-tokens-huge", with_fields(max_tokens=262_145), "max_tokens", "expected a value <= 262144",
     "invalid_value"),
    ("max-tokens-bool", with_fields(max_tokens=True), "max_tokens",
     "expected an integer, but got a boolean", "invalid_type"),
    ("max-tokens-float", with_fields(max_tokens=5.5), "max_tokens",
     "expected an integer, but got a decimal number", "invalid_type"),
    ("max-tokens-nan", with_fields(max_tokens=float("nan")), "max_tokens",
     "expected an integer, but got a decimal number", "invalid_type"),
    ("max-completion-tokens-zero", with_fields(max_completion_tokens=0), "max_completion_tokens",
     "expected a value >= 1", "invalid_value"),
    ("min-tokens-negative", with_fields(min_tokens=-1), "min_tokens", "expected a value >= 0",
     "invalid_value"),
    ("truncate-zero", with_fields(truncate_prompt_tokens=0), "truncate_prompt_tokens",
     "expected a value >= 1",
     "invalid_value"),
    ("n-two", with_fields(n=2), "n", "only 1 is supported, but got 2", "invalid_value"),
    ("n-huge", with_fields(n=10**5000), "n", "a very large integer", "invalid_value"),
    ("best-of-two", with_fields(best_of=2), "best_of", "only 1 is supported", "invalid_value"),
    ("seed-float", with_fields(seed=1.5), "seed", "expected an integer", "invalid_type"),
    ("seed-overflow", with_fields(seed=2**63), "seed", "expected a value <= 9223372036854775807",
     "invalid_value"),
    ("top-k-zero", with_fields(top_k=0), "top_k", "expected -1 (disabled) or a value >= 1", "invalid_value"),
    ("top-k-minus-two", with_fields(top_k=-2), "top_k", "expected a value >= -1", "invalid_value"),
    ("min-p-high", with_fields(min_p=1.5), "min_p", "expected a value <= 1", "invalid_value"),
    ("top-p-min-negative", with_fields(top_p_min=-0.5), "top_p_min", "expected a value >= 0",
     "invalid_value"),
    ("repetition-penalty-zero", with_fields(repetition_penalty=0), "repetition_penalty",
     "expected a value > 0", "invalid_value"),
    ("frequency-penalty", with_fields(frequency_penalty=3), "frequency_penalty", "expected a value <= 2",
     "invalid_value"),
    ("presence-penalty", with_fields(presence_penalty=-2.5), "presence_penalty", "expected a value >= -2",
     "invalid_value"),
    ("length-penalty-string", with_fields(length_penalty="1"), "length_penalty", "expected a number",
     "invalid_type"),
    # stop.
    ("stop-empty-string", with_fields(stop=""), "stop", "`stop` cannot be empty", "empty_string"),
    ("stop-too-many", with_fields(stop=[f"s{i}" for i in range(33)]), "stop", "at most 32, but got 33",
     "too_many"),
    ("stop-item-int", with_fields(stop=["a", "b", "c", 5]), "stop[3]",
     "expected a string, but got an integer",
     "invalid_type"),
    ("stop-item-long", with_fields(stop=["x" * 1001]), "stop[0]", "at most 1000 characters, but got 1001",
     "string_too_long"),
    ("stop-item-empty", with_fields(stop=["a", ""]), "stop[1]", "cannot be empty", "empty_string"),
    ("stop-int", with_fields(stop=5), "stop", "expected a string or an array of strings", "invalid_type"),
    # logprobs and logit_bias.
    ("top-logprobs-high", with_fields(logprobs=True, top_logprobs=21), "top_logprobs",
     "expected a value <= 20",
     "invalid_value"),
    ("top-logprobs-alone", with_fields(top_logprobs=5), "top_logprobs", "requires 'logprobs' to be true",
     "invalid_value"),
    ("top-logprobs-logprobs-false", with_fields(logprobs=False, top_logprobs=2), "top_logprobs",
     "requires 'logprobs'", "invalid_value"),
    ("logprobs-string", with_fields(logprobs="true"), "logprobs", "expected a boolean", "invalid_type"),
    ("logit-bias-range", with_fields(logit_bias={"50256": 101}), "logit_bias.50256",
     "expected a value <= 100",
     "invalid_value"),
    ("logit-bias-key", with_fields(logit_bias={"abc": 1}), "logit_bias", "keys must be token ids",
     "invalid_value"),
    ("logit-bias-unicode-digit", with_fields(logit_bias={"²": 1}), "logit_bias", "keys must be token ids",
     "invalid_value"),
    ("logit-bias-list", with_fields(logit_bias=[1]), "logit_bias", "expected an object", "invalid_type"),
    # Streaming.
    ("stream-string", with_fields(stream="yes"), "stream", "expected a boolean, but got a string",
     "invalid_type"),
    ("stream-options-type", with_fields(stream=True, stream_options={"include_usage": "yes"}),
     "stream_options.include_usage", "expected a boolean", "invalid_type"),
    ("stream-options-unknown", with_fields(stream=True, stream_options={"obfuscate": False}),
     "stream_options.obfuscate", "Unrecognized request argument", "unknown_parameter"),
    ("stream-options-obfuscation-type", with_fields(stream=True, stream_options={"include_obfuscation": "no"}),
     "stream_options.include_obfuscation", "expected a boolean", "invalid_type"),
    ("stream-options-without-stream", with_fields(stream_options={"include_usage": True}), "stream_options",
     "only allowed when 'stream' is true", "invalid_value"),
    # Reasoning and templates.
    ("reasoning-effort", with_fields(reasoning_effort="extreme"), "reasoning_effort",
     "'extreme'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'",
     "invalid_value"),
    ("reasoning-effort-int", with_fields(reasoning_effort=2), "reasoning_effort", "expected a string",
     "invalid_type"),
    ("chat-template-args", with_fields(chat_template_args="enable_thinking"), "chat_template_args",
     "expected an object", "invalid_type"),
    ("chat-template-int", with_fields(chat_template=1), "chat_template", "expected a string", "invalid_type"),
    # Metadata, user and vLLM extras.
    ("metadata-value", with_fields(metadata={"k": 5}), "metadata.k", "expected a string", "invalid_type"),
    ("metadata-too-many", with_fields(metadata={f"k{i}": "v" for i in range(17)}), "metadata",
     "too many pairs", "too_many"),
    ("metadata-long-value", with_fields(metadata={"k": "v" * 513}), "metadata.k", "at most 512",
     "string_too_long"),
    ("user-int", with_fields(user=5), "user", "expected a string", "invalid_type"),
    ("documents-value", with_fields(documents=[{"title": 1}]), "documents[0].title", "expected a string",
     "invalid_type"),
    ("documents-item", with_fields(documents=["text"]), "documents[0]", "expected an object", "invalid_type"),
    ("bad-int", with_fields(bad=5), "bad", "expected a string or an array of strings", "invalid_type"),
    ("bad-item", with_fields(bad=["x", 1]), "bad[1]", "expected a string", "invalid_type"),
    ("bad-token-ids-negative", with_fields(bad_token_ids=[1, -1]), "bad_token_ids[1]",
     "expected a value >= 0",
     "invalid_value"),
    ("stop-token-ids-string", with_fields(stop_token_ids="2"), "stop_token_ids", "expected an array",
     "invalid_type"),
    ("echo-string", with_fields(echo="true"), "echo", "expected a boolean", "invalid_type"),
    ("disaggregated-params", with_fields(disaggregated_params=5), "disaggregated_params",
     "expected an object",
     "invalid_type"),
    # tools.
    ("tools-string", with_fields(tools="square_root"), "tools", "expected an array", "invalid_type"),
    ("tools-empty", with_fields(tools=[]), "tools", "empty array", "empty_array"),
    ("tools-too-many", with_fields(tools=[tool(f"f{i}") for i in range(129)]), "tools", "at most 128",
     "too_many"),
    ("tool-type", with_fields(tools=[{"type": "retrieval"}]), "tools[0].type",
     "'retrieval'. Supported values are: 'function'", "invalid_value"),
    ("tool-function-missing", with_fields(tools=[{"type": "function"}]), "tools[0].function",
     "Missing required parameter", "missing_required_parameter"),
    ("tool-name-pattern", with_fields(tools=[tool("square root")]), "tools[0].function.name",
     "does not match pattern", "invalid_value"),
    ("tool-name-long", with_fields(tools=[tool("f" * 65)]), "tools[0].function.name", "at most 64",
     "string_too_long"),
    ("tool-name-missing", with_fields(tools=[{"type": "function", "function": {"description": "x"}}]),
     "tools[0].function.name", "Missing required parameter", "missing_required_parameter"),
    ("tool-parameters", with_fields(tools=[tool(parameters="{}")]), "tools[0].function.parameters",
     "expected an object, but got a string", "invalid_type"),
    ("tool-strict", with_fields(tools=[tool(strict="yes")]), "tools[0].function.strict", "expected a boolean",
     "invalid_type"),
    ("tool-function-unknown", with_fields(tools=[tool(examples=[])]), "tools[0].function.examples",
     "Unrecognized request argument", "unknown_parameter"),
    # tool_choice.
    ("tool-choice-value", with_fields(tools=TOOLS, tool_choice="sometimes"), "tool_choice",
     "'sometimes'. Supported values are: 'none', 'auto', and 'required'", "invalid_value"),
    ("tool-choice-without-tools", with_fields(tool_choice="auto"), "tool_choice",
     "only allowed when 'tools' are specified", "invalid_value"),
    ("tool-choice-required-without-tools", with_fields(tool_choice="required"), "tool_choice",
     "only allowed when 'tools' are specified", "invalid_value"),
    ("tool-choice-unknown-function",
     with_fields(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "cube_root"}}),
     "tool_choice.function.name", "no function named 'cube_root'", "invalid_value"),
    ("tool-choice-empty-name", with_fields(tools=TOOLS, tool_choice={"type": "function",
     "function": {"name": ""}}),
     "tool_choice.function.name", "cannot be empty", "empty_string"),
    ("tool-choice-int", with_fields(tools=TOOLS, tool_choice=1), "tool_choice",
     "expected a string or an object",
     "invalid_type"),
    ("tool-choice-type", with_fields(tools=TOOLS, tool_choice={"type": "tool",
     "function": {"name": "square_root"}}),
     "tool_choice.type", "Supported values are: 'function'", "invalid_value"),
    # response_format.
    ("response-format-type", with_fields(response_format={"type": "xml"}), "response_format.type",
     "'xml'. Supported values are: 'text', 'json_object', 'json_schema', 'grammar', and 'structural_tag'",
     "invalid_value"),
    ("response-format-no-type", with_fields(response_format={}), "response_format.type",
     "Missing required parameter", "missing_required_parameter"),
    ("response-format-string", with_fields(response_format="json"), "response_format", "expected an object",
     "invalid_type"),
    ("json-schema-empty-name", with_fields(response_format=_json_schema(name="", schema={})),
     "response_format.json_schema.name", "`response_format.json_schema.name` cannot be empty",
     "empty_string"),
    ("json-schema-missing-name", with_fields(response_format=_json_schema(schema={})),
     "response_format.json_schema.name", "Missing required parameter", "missing_required_parameter"),
    ("json-schema-name-pattern", with_fields(response_format=_json_schema(name="my schema")),
     "response_format.json_schema.name", "does not match pattern", "invalid_value"),
    ("json-schema-missing", with_fields(response_format={"type": "json_schema"}),
     "response_format.json_schema",
     "Missing required parameter", "missing_required_parameter"),
    ("json-schema-schema", with_fields(response_format=_json_schema(name="a", schema="{}")),
     "response_format.json_schema.schema", "expected an object", "invalid_type"),
    ("json-schema-unknown", with_fields(response_format=_json_schema(name="a", format="x")),
     "response_format.json_schema.format", "Unrecognized request argument", "unknown_parameter"),
    ("json-object-extra", with_fields(response_format={"type": "json_object", "schema": {}}),
     "response_format.schema", "Unrecognized request argument", "unknown_parameter"),
    # provider.
    ("provider-string", with_fields(provider="xpay"), "provider", "expected an object", "invalid_type"),
    ("provider-sort", with_fields(provider={"sort": "cheapest"}), "provider.sort",
     "'cheapest'. Supported values are: 'price', 'latency', and 'throughput'", "invalid_value"),
    ("provider-order-unknown", with_fields(provider={"order": ["baseten", "openrouter"]}),
     "provider.order[1]",
     "unknown front end 'openrouter'", "invalid_value"),
    ("provider-ignore-int", with_fields(provider={"ignore": [1]}), "provider.ignore[0]", "expected a string",
     "invalid_type"),
    ("provider-ignore-twice", with_fields(provider={"ignore": ["xpay", "xpay"]}), "provider.ignore[1]",
     "listed twice", "invalid_value"),
    ("provider-only-empty", with_fields(provider={"only": []}), "provider.only", "empty array",
     "empty_array"),
    ("provider-only-string", with_fields(provider={"only": "xpay"}), "provider.only", "expected an array",
     "invalid_type"),
    ("provider-fallbacks", with_fields(provider={"allow_fallbacks": "no"}), "provider.allow_fallbacks",
     "expected a boolean", "invalid_type"),
    ("provider-require-parameters", with_fields(provider={"require_parameters": 1}),
     "provider.require_parameters", "expected a boolean", "invalid_type"),
    ("provider-max-cost-zero", with_fields(provider={"max_cost_usd": 0}), "provider.max_cost_usd",
     "expected a value > 0", "invalid_value"),
    ("provider-max-cost-negative-string", with_fields(provider={"max_cost_usd": "-1"}),
     "provider.max_cost_usd",
     "expected a decimal amount", "invalid_value"),
    ("provider-max-cost-word", with_fields(provider={"max_cost_usd": "cheap"}), "provider.max_cost_usd",
     "expected a decimal amount", "invalid_value"),
    ("provider-max-cost-nan-string", with_fields(provider={"max_cost_usd": "NaN"}), "provider.max_cost_usd",
     "expected a decimal amount", "invalid_value"),
    ("provider-max-cost-inf", with_fields(provider={"max_cost_usd": float("inf")}), "provider.max_cost_usd",
     "expected a finite number", "invalid_value"),
    ("provider-max-cost-bool", with_fields(provider={"max_cost_usd": True}), "provider.max_cost_usd",
     "expected a number or a decimal string", "invalid_type"),
    ("provider-unknown", with_fields(provider={"data_collection": "deny"}), "provider.data_collection",
     "Unrecognized request argument supplied: provider.data_collection", "unknown_parameter"),
    # OpenAI's parameters that no route can honour: refused, saying why.
    ("audio", with_fields(audio={"voice": "alloy", "format": "mp3"}), "audio", "no route produces audio output",
     "unsupported_parameter"),
    ("web-search", with_fields(web_search_options={}), "web_search_options", "no route searches the web",
     "unsupported_parameter"),
    ("moderation", with_fields(moderation={"model": "omni-moderation-latest"}), "moderation",
     "moderation", "unsupported_parameter"),
    ("function-call", with_fields(function_call="auto"), "function_call", "send `tool_choice` instead",
     "unsupported_parameter"),
    ("modalities-audio", with_fields(modalities=["text", "audio"]), "modalities[1]", "no route produces audio",
     "unsupported_value"),
    ("modalities-video", with_fields(modalities=["video"]), "modalities[0]", "Supported values are",
     "invalid_value"),
    ("modalities-string", with_fields(modalities="text"), "modalities", "expected an array", "invalid_type"),
    ("verbosity-low", with_fields(verbosity="low"), "verbosity", "open models answer at their own length",
     "unsupported_value"),
    ("verbosity-unknown", with_fields(verbosity="terse"), "verbosity", "Supported values are", "invalid_value"),
    # Dropped parameters still have a JSON type.
    ("store-string", with_fields(store="yes"), "store", "expected a boolean", "invalid_type"),
    ("cache-key-number", with_fields(prompt_cache_key=7), "prompt_cache_key", "expected a string",
     "invalid_type"),
    ("cache-options-list", with_fields(prompt_cache_options=[]), "prompt_cache_options", "expected an object",
     "invalid_type"),
    ("safety-id-number", with_fields(safety_identifier=1), "safety_identifier", "expected a string",
     "invalid_type"),
    ("prediction-string", with_fields(prediction="x"), "prediction", "expected an object", "invalid_type"),
    ("prediction-content-number", with_fields(prediction={"type": "content", "content": 5}),
     "prediction.content", "a string or an array of text parts", "invalid_type"),
    ("breakpoint-string", with_fields(messages=[{"role": "user", "content": [
        {"type": "text", "text": "hi", "prompt_cache_breakpoint": "here"}]}]),
     "messages[0].content[0].prompt_cache_breakpoint", "expected an object", "invalid_type"),
    # Strings the gateway stores: text Postgres can hold.
    ("model-nul", with_fields(model="openai/gpt\x00oss"), "model", "NUL", "invalid_value"),
    ("user-nul", with_fields(user="ana\x00"), "user", "NUL", "invalid_value"),
    ("user-too-long", with_fields(user="u" * 513), "user", "at most 512", "string_too_long"),
    ("metadata-value-nul", with_fields(metadata={"team": "a\x00b"}), "metadata.team", "NUL", "invalid_value"),
    ("metadata-key-nul", with_fields(metadata={"te\x00am": "a"}), "metadata", "NUL", "invalid_value"),
    # OpenRouter's reasoning object.
    ("reasoning-string", with_fields(reasoning="high"), "reasoning", "expected an object", "invalid_type"),
    ("reasoning-unknown", with_fields(reasoning={"summary": "auto"}), "reasoning.summary",
     "Unrecognized request argument", "unknown_parameter"),
    ("reasoning-effort-bad", with_fields(reasoning={"effort": "extreme"}), "reasoning.effort",
     "Supported values are", "invalid_value"),
    ("reasoning-budget-negative", with_fields(reasoning={"max_tokens": -1}), "reasoning.max_tokens",
     "expected a value >= 0", "invalid_value"),
    ("reasoning-budget-float", with_fields(reasoning={"max_tokens": 10.5}), "reasoning.max_tokens",
     "expected an integer", "invalid_type"),
    ("reasoning-both", with_fields(reasoning={"effort": "low", "max_tokens": 2000}), "reasoning",
     "either an effort or 'max_tokens'", "invalid_value"),
    ("reasoning-budget-and-top-level-effort", with_fields(reasoning_effort="none", reasoning={"max_tokens": 9}),
     "reasoning", "either an effort or 'max_tokens'", "invalid_value"),
    ("reasoning-off-with-top-level-effort", with_fields(reasoning_effort="high", reasoning={"enabled": False}),
     "reasoning.enabled", "cannot be disabled", "invalid_value"),
    ("reasoning-off-with-effort", with_fields(reasoning={"enabled": False, "effort": "high"}),
     "reasoning.enabled", "cannot be disabled", "invalid_value"),
    ("reasoning-on-with-nothing", with_fields(reasoning={"enabled": True, "max_tokens": 0}),
     "reasoning.enabled", "cannot be enabled", "invalid_value"),
    ("reasoning-exclude-type", with_fields(reasoning={"exclude": "yes"}), "reasoning.exclude",
     "expected a boolean", "invalid_type"),
    ("reasoning-contradicts-effort", with_fields(reasoning_effort="low", reasoning={"effort": "high"}),
     "reasoning.effort", "contradicts the top-level", "invalid_value"),
    ("reasoning-contradicts-template", with_fields(reasoning={"enabled": False},
                                                   chat_template_args={"enable_thinking": True}),
     "chat_template_args.enable_thinking", "contradicts", "invalid_value"),
    ("effort-none-contradicts-template", with_fields(reasoning_effort="none",
                                                     chat_template_args={"enable_thinking": True}),
     "chat_template_args.enable_thinking", "contradicts", "invalid_value"),
    # One bad value deep inside an otherwise complete request.
    ("rich-deep-audio", _rich_with(("messages", 2, "content", 3, "input_audio", "format"), "flac"),
     "messages[2].content[3].input_audio.format", "'flac'", "invalid_value"),
    ("rich-deep-tool-call", _rich_with(("messages", 3, "tool_calls", 0, "function", "arguments"), None),
     "messages[3].tool_calls[0].function.arguments", "Missing required parameter",
     "missing_required_parameter"),
]


@pytest.mark.parametrize(
    ("body", "param", "fragment", "code"),
    [pytest.param(body, param, fragment, code, id=case_id) for case_id, body, param, fragment, code in CASES],
)
def test_bad_request_is_a_400_naming_the_parameter(body, param, fragment, code):
    assert_rejected(body, param, fragment, code)


def test_table_covers_enough_cases():
    ids = [case[0] for case in CASES + MESSAGE_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


def test_first_problem_wins_in_body_order():
    body = {"temperature": 9, "model": "", "messages": []}
    with pytest.raises(GatewayError) as caught:
        validate_chat_request(body)
    assert caught.value.param == "temperature"


def test_error_message_does_not_quote_long_values():
    secret_prompt = "my private prompt " * 20
    with pytest.raises(GatewayError) as caught:
        validate_chat_request(with_fields(reasoning_effort=secret_prompt))
    assert secret_prompt not in caught.value.message
    assert len(caught.value.message) < 300
