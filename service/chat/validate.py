"""Validation of a `POST /v1/chat/completions` body, and the view of it that routing reads.

`validate_chat_request(body)` checks the already-decoded JSON against Baseten's ChatCompletionRequest
schema (seed 002), every parameter of OpenAI's current request (`service.chat.params` says what
becomes of each), OpenRouter's `reasoning` object and Switchyard's routing extensions (`provider`,
`models`). The first problem
raises `GatewayError` (400, ``invalid_request_error``) whose `param` is the OpenAI-style path of the
offending value (``messages[2].role``, ``stop[3]``, ``provider.sort``; an unknown key is named by its
own path, e.g. ``messages[0].foo``) and whose `code` is one of those listed in
`service.chat.validate_types`: invalid_type, invalid_value, missing_required_parameter,
unknown_parameter, empty_string, empty_array, too_many, string_too_long, unsupported_parameter,
unsupported_value. A body that is not a JSON object answers invalid_type with no param.

Conventions:
- An optional key whose value is null is treated as absent (OpenAI accepts explicit nulls); it is
  then not counted in `ChatRequestView.sent_params`.
- Integer fields take JSON integers, also spelled as whole floats (5.0 is 5, as JSON Schema reads
  it; the view holds ints and `upstream_fields` sends ints), never booleans. Number fields take
  integers or finite floats.
- Ranges beyond the schema's own, chosen because the engines reject the value anyway:
  seed fits in int64; top_p_min and min_p in 0..1; repetition_penalty > 0; min_tokens 0..262144;
  token ids (bad_token_ids, stop_token_ids, logit_bias keys) 0..2**31-1; metadata follows OpenAI
  (16 pairs, keys <= 64 chars, values <= 512 chars). `stream_options` needs `stream: true` and
  `top_logprobs` needs `logprobs: true`, as on OpenAI.
- Strings the gateway stores (`model`, `user`, `metadata`) must be text Postgres can hold: no NUL.
- Reasoning wishes must agree: `reasoning.effort` with `reasoning_effort`, and both with
  `chat_template_args.enable_thinking` when that is a boolean.
- The body is read, never mutated, and walked once: the view is gathered during the checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.chat.params import ACCEPTED_PARAMS
from service.chat.reasoning import NO_INTENT, REASONING_EFFORTS, ReasoningIntent, check_reasoning, intent_of
from service.chat.validate_messages import MessageTally, check_messages
from service.chat.validate_params import MAX_OUTPUT_TOKENS, stateless_checks
from service.chat.validate_provider import (
    DEFAULT_PROVIDER_PREFS,
    ProviderPrefs,
    check_models,
    check_provider,
)
from service.chat.validate_tools import check_response_format, check_tool_choice, check_tools
from service.chat.validate_types import (
    INVALID_TYPE,
    bad_value,
    check_bool,
    check_enum,
    check_int,
    check_keys,
    check_object,
    check_str,
    empty_string,
    join,
    missing,
    show,
    too_long,
    too_many,
    unknown,
    wrong_type,
)
from service.errors import invalid

__all__ = ["KNOWN_PARAMS", "REASONING_EFFORTS", "ChatRequestView", "ProviderPrefs", "validate_chat_request"]

MAX_STOP_SEQUENCES = 32
MAX_MODEL_CHARS = 256
MAX_STOP_CHARS = 1000

_STREAM_OPTION_KEYS = frozenset({"include_usage", "continuous_usage_stats", "include_obfuscation"})


@dataclass(frozen=True, slots=True)
class ChatRequestView:
    """What routing needs from a valid request, so nothing reads the body twice."""

    model: str
    models: tuple[str, ...] | None  # the fallback slugs, in the client's order
    stream: bool
    include_usage: bool  # stream_options.include_usage as the client sent it
    max_output_tokens: int | None  # max_completion_tokens when given, else max_tokens
    has_tools: bool
    tool_choice_required: bool
    response_format_kind: str | None
    image_parts: int
    audio_parts: int
    reasoning_effort: str | None  # the top-level parameter as sent: models must take it
    wants_reasoning: bool  # asked for: reasoning on, an effort or a budget, or enable_thinking
    stop_count: int
    logprobs: bool
    provider: ProviderPrefs
    message_count: int
    text_chars: int  # text content, tool-call arguments and reasoning_content: for token estimates
    sent_params: frozenset[str]  # top-level keys present with a non-null value
    # From `reasoning`, `reasoning_effort` and `chat_template_args.enable_thinking` together:
    reasoning_off: bool = False  # turned off (enabled false, effort or budget none)
    effective_effort: str | None = None  # the effort asked, or nearest to the budget asked
    reasoning_budget: int | None = None  # reasoning.max_tokens
    exclude_reasoning: bool = False  # reasoning.exclude: strip reasoning_content from the answer


class _Collected:
    """Values gathered field by field, then checked against each other."""

    __slots__ = (
        "enable_thinking",
        "include_usage",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "message_count",
        "model",
        "models",
        "provider",
        "reasoning",
        "reasoning_effort",
        "response_format_kind",
        "stop_count",
        "stream",
        "stream_options",
        "tally",
        "tool_choice",
        "tool_choice_name",
        "tool_names",
        "top_logprobs",
    )

    def __init__(self) -> None:
        self.model: str | None = None
        self.models: tuple[str, ...] | None = None
        self.message_count = 0
        self.tally = MessageTally()
        self.stream = False
        self.stream_options = False
        self.include_usage = False
        self.max_tokens: int | None = None
        self.max_completion_tokens: int | None = None
        self.tool_names: frozenset[str] | None = None
        self.tool_choice: str | None = None
        self.tool_choice_name: str | None = None
        self.response_format_kind: str | None = None
        self.reasoning_effort: str | None = None
        self.reasoning: object = None
        self.enable_thinking: bool | None = None
        self.stop_count = 0
        self.logprobs = False
        self.top_logprobs = False
        self.provider = DEFAULT_PROVIDER_PREFS


_Check = Callable[[object, _Collected], None]


def validate_chat_request(body: object) -> ChatRequestView:
    """Check a decoded chat-completions body; raise GatewayError(400) on its first problem."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, INVALID_TYPE)
    got = _Collected()
    sent = []
    fields = _FIELDS
    for key, value in body.items():
        check = fields.get(key)
        if check is None:
            raise unknown(join("", key))
        if value is None:
            continue
        sent.append(key)
        check(value, got)
    if got.model is None:
        raise missing("model")
    if got.message_count == 0:
        raise missing("messages")
    _check_across(got)
    intent = _reasoning_intent(got)
    max_output = got.max_completion_tokens if got.max_completion_tokens is not None else got.max_tokens
    tool_choice = got.tool_choice
    return ChatRequestView(
        model=got.model,
        models=got.models,
        stream=got.stream,
        include_usage=got.include_usage,
        max_output_tokens=max_output,
        has_tools=got.tool_names is not None,
        tool_choice_required=tool_choice == "required" or tool_choice == "function",
        response_format_kind=got.response_format_kind,
        image_parts=got.tally.image_parts,
        audio_parts=got.tally.audio_parts,
        reasoning_effort=got.reasoning_effort,
        wants_reasoning=intent.on is True or got.enable_thinking is True,
        stop_count=got.stop_count,
        logprobs=got.logprobs,
        provider=got.provider,
        message_count=got.message_count,
        text_chars=got.tally.text_chars,
        sent_params=frozenset(sent),
        reasoning_off=intent.on is False or got.enable_thinking is False,
        effective_effort=intent.effort,
        reasoning_budget=intent.budget,
        exclude_reasoning=intent.exclude,
    )


def _reasoning_intent(got: _Collected) -> ReasoningIntent:
    """One reading of the three ways to ask for reasoning; contradictions are refused."""
    if got.reasoning is not None:
        intent = check_reasoning(got.reasoning, got.reasoning_effort)
    elif got.reasoning_effort is not None:
        intent = intent_of(None, got.reasoning_effort)
    else:
        intent = NO_INTENT
    if got.enable_thinking is not None and intent.on is not None and intent.on != got.enable_thinking:
        raise bad_value(
            "chat_template_args.enable_thinking",
            f"{show(got.enable_thinking)} contradicts the reasoning asked by 'reasoning' or 'reasoning_effort'.",
        )
    return intent


def _check_across(got: _Collected) -> None:
    """Rules that tie two fields together, checked once every field is known to be well formed."""
    if got.top_logprobs and not got.logprobs:
        raise bad_value("top_logprobs", "'top_logprobs' requires 'logprobs' to be true.")
    if got.stream_options and not got.stream:
        raise bad_value("stream_options", "'stream_options' is only allowed when 'stream' is true.")
    if got.tool_choice is not None and got.tool_choice != "none":
        if got.tool_names is None:
            raise bad_value("tool_choice", "'tool_choice' is only allowed when 'tools' are specified.")
        if got.tool_choice_name is not None and got.tool_choice_name not in got.tool_names:
            raise bad_value(
                "tool_choice.function.name",
                f"no function named {show(got.tool_choice_name)} is declared in 'tools'.",
            )


# Field checks that feed the view.


def _model(value: object, got: _Collected) -> None:
    # Slugs are short; a long one would only be echoed into errors and logs. Stored with usage.
    got.model = check_str(value, "model", non_empty=True, max_len=MAX_MODEL_CHARS, stored=True)


def _models(value: object, got: _Collected) -> None:
    got.models = check_models(value)


def _messages(value: object, got: _Collected) -> None:
    got.message_count = check_messages(value, got.tally)


def _stream(value: object, got: _Collected) -> None:
    got.stream = check_bool(value, "stream")


def _stream_options(value: object, got: _Collected) -> None:
    options = check_object(value, "stream_options")
    check_keys(options, _STREAM_OPTION_KEYS, "stream_options")
    include_usage = options.get("include_usage")
    if include_usage is not None:
        got.include_usage = check_bool(include_usage, "stream_options.include_usage")
    for flag in ("continuous_usage_stats", "include_obfuscation"):
        value = options.get(flag)
        if value is not None:
            check_bool(value, f"stream_options.{flag}")
    got.stream_options = True


def _max_tokens(value: object, got: _Collected) -> None:
    got.max_tokens = check_int(value, "max_tokens", 1, MAX_OUTPUT_TOKENS)


def _max_completion_tokens(value: object, got: _Collected) -> None:
    got.max_completion_tokens = check_int(value, "max_completion_tokens", 1, MAX_OUTPUT_TOKENS)


def _tools(value: object, got: _Collected) -> None:
    got.tool_names = check_tools(value)


def _tool_choice(value: object, got: _Collected) -> None:
    got.tool_choice, got.tool_choice_name = check_tool_choice(value)


def _response_format(value: object, got: _Collected) -> None:
    got.response_format_kind = check_response_format(value)


def _reasoning_effort(value: object, got: _Collected) -> None:
    got.reasoning_effort = check_enum(value, "reasoning_effort", REASONING_EFFORTS)


def _chat_template_args(value: object, got: _Collected) -> None:
    args = check_object(value, "chat_template_args")
    thinking = args.get("enable_thinking")
    # Other values are the template's own business; only a boolean says what the client wants.
    got.enable_thinking = thinking if type(thinking) is bool else None


def _reasoning(value: object, got: _Collected) -> None:
    # Checked once every field is in: it must agree with reasoning_effort, wherever that is.
    got.reasoning = value


def _stop(value: object, got: _Collected) -> None:
    if type(value) is str:
        _stop_sequence(value, "stop")
        got.stop_count = 1
        return
    if not isinstance(value, list):
        raise wrong_type("stop", "a string or an array of strings", value)
    if len(value) > MAX_STOP_SEQUENCES:
        raise too_many("stop", MAX_STOP_SEQUENCES, len(value))
    for index, sequence in enumerate(value):
        _stop_sequence(sequence, f"stop[{index}]")
    got.stop_count = len(value)


def _stop_sequence(value: object, param: str) -> None:
    if type(value) is not str:
        raise wrong_type(param, "a string", value)
    if not value:
        raise empty_string(param)
    if len(value) > MAX_STOP_CHARS:
        raise too_long(param, MAX_STOP_CHARS, len(value))


def _logprobs(value: object, got: _Collected) -> None:
    got.logprobs = check_bool(value, "logprobs")


def _top_logprobs(value: object, got: _Collected) -> None:
    check_int(value, "top_logprobs", 0, 20)
    got.top_logprobs = True


def _provider(value: object, got: _Collected) -> None:
    got.provider = check_provider(value)


_VIEW_CHECKS: dict[str, _Check] = {
    # Seed 002's ChatCompletionRequest fields that routing reads.
    "messages": _messages,
    "model": _model,
    "logprobs": _logprobs,
    "top_logprobs": _top_logprobs,
    "max_tokens": _max_tokens,
    "response_format": _response_format,
    "stop": _stop,
    "stream": _stream,
    "stream_options": _stream_options,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "chat_template_args": _chat_template_args,
    # OpenAI's fields that Baseten also takes.
    "max_completion_tokens": _max_completion_tokens,
    "reasoning_effort": _reasoning_effort,
    # OpenRouter's reasoning controls.
    "reasoning": _reasoning,
    # Switchyard's routing extensions, named as OpenRouter's.
    "provider": _provider,
    "models": _models,
}

_FIELDS: dict[str, _Check] = {**_VIEW_CHECKS, **stateless_checks()}

# Every top-level parameter the gateway accepts: routing's `require_parameters` and the adapters'
# per-route parameter limits compare `ChatRequestView.sent_params` against their own subsets.
KNOWN_PARAMS: frozenset[str] = ACCEPTED_PARAMS
