"""`POST /v1/responses` bodies as Chat Completions requests.

`responses_to_chat(body, history=...)` checks an OpenAI Responses request and builds the chat body
the gateway routes (`ResponsesRequest.chat`). Problems raise `GatewayError` (400,
invalid_request_error) whose `param` is the Responses path (`input[2].content[0].image_url`), with
the chat validator's codes plus `unsupported_value` for features that exist on OpenAI but not here.
An unknown top-level key is refused as OpenAI refuses it; fields that are understood but have no
effect here are accepted and listed in `ResponsesRequest.ignored`, with their reasons in
`IGNORED_FIELDS`. The caller still runs `validate_chat_request(request.chat)` for the routing view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.chat.validate import REASONING_EFFORTS
from service.chat.validate_params import (
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE_CHARS,
    MAX_OUTPUT_TOKENS,
)
from service.chat.validate_types import (
    INVALID_TYPE,
    bad_value,
    check_array,
    check_bool,
    check_int,
    check_number,
    check_object,
    check_str,
    join,
    missing,
    not_one_of,
    too_many,
    unknown,
    wrong_type,
)
from service.errors import GatewayError, invalid
from service.inbound.responses_items import Item, items_to_messages, normalize_items
from service.inbound.responses_tools import (
    ToolSet,
    convert_text,
    convert_tool_choice,
    convert_tools,
    unsupported,
)

MAX_MODEL_CHARS = 256
REASONING_SUMMARIES = ("auto", "concise", "detailed")

# Every field accepted but without effect here, and why. `ResponsesRequest.ignored` names the ones
# a request used.
IGNORED_FIELDS: Mapping[str, str] = {
    "include": "Extra output (encrypted reasoning, logprobs, tool call results) is not produced: "
    "reasoning comes back as readable summary text and no hosted tools run.",
    "prompt_cache_key": "Baseten's engines cache prompt prefixes on their own and take no cache key.",
    "prompt_cache_retention": "Prompt caching is the engines' own; its retention cannot be set.",
    "prompt_cache_options": "Prompt caching is the engines' own; it takes no options.",
    "service_tier": "The upstreams have a single tier; routing decides the route by cost.",
    "truncation": "The conversation is never truncated here: one that does not fit the model's "
    "context is refused (context_length_exceeded), as with truncation 'disabled'.",
    "client_metadata": "Codex CLI's installation and session identifiers: no upstream takes them.",
    "safety_identifier": "Sent together with 'user', which already names the end user; alone it is "
    "passed as the chat 'user'.",
    "stream_options": "Its only option, include_obfuscation, pads deltas against side channels on "
    "OpenAI's servers; no padding is added here.",
    "top_logprobs": "Log probabilities are not returned through the Responses API here.",
    "max_tool_calls": "It limits calls to hosted tools, and none run here.",
    "context_management": "Server-side compaction is not offered; the client keeps its own context.",
    "image": "It configures hosted image generation, which is not offered.",
    "access_programs": "OpenAI's access programs do not apply to the open models served here.",
    "background_options": "Background mode is not offered; the request runs in the foreground.",
    "reasoning.summary": "Reasoning models here return their reasoning as it is; it is always given "
    "as the reasoning item's summary text, whatever summary style is asked for.",
    "reasoning.generate_summary": "Deprecated form of reasoning.summary; same as it.",
    "reasoning.context": "Earlier reasoning is always passed back to the model (see responses_items).",
    "reasoning.mode": "The open models have one reasoning mode.",
    "text.verbosity": "Chat Completions upstreams have no verbosity control.",
    "tools.web_search": "Codex CLI declares it on every request; no search runs here, so it is "
    "left out and the model answers without it.",
}

# Fields the OpenAI API takes whose meaning cannot be kept without features the gateway lacks.
_REFUSED: Mapping[str, str] = {
    "conversation": "Conversations are not supported: continue a conversation with "
    "'previous_response_id' instead.",
    "prompt": "Stored prompt templates are not supported: send 'instructions' and 'input' instead.",
    "moderation": "Moderation of inputs and outputs is not offered here.",
}

_TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "metadata",
        "user",
        "stream",
        "store",
        "previous_response_id",
        "background",
        # Switchyard's routing extensions, passed to the chat request as they are.
        "provider",
        "models",
    }
)
_TOP_LEVEL = _TRANSLATED | {k for k in IGNORED_FIELDS if "." not in k} | set(_REFUSED)


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A checked Responses request and its Chat Completions form."""

    chat: dict[str, Any]
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    input_items: tuple[Item, ...]  # this turn's input, canonical: what storage keeps
    history: tuple[Item, ...]  # the stored conversation that previous_response_id continues
    ignored: tuple[str, ...]  # keys of IGNORED_FIELDS this request used
    echo: dict[str, Any]  # the request fields a Response object repeats
    tool_namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # chat name -> (ns, name)


def previous_response_not_found(response_id: str) -> GatewayError:
    """OpenAI's answer when `previous_response_id` names nothing this tenant can read."""
    return invalid(
        f"Previous response with id '{response_id[:128]}' not found.",
        "previous_response_id",
        "previous_response_not_found",
    )


def responses_to_chat(body: object, *, history: list[dict[str, Any]] | None) -> ResponsesRequest:
    """Check a decoded Responses body and build its chat request.

    `history` is the stored conversation that the body's `previous_response_id` names, loaded by the
    caller; None when there is no previous response (or it was not found: then this raises)."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", None, INVALID_TYPE)
    for key in body:
        if key not in _TOP_LEVEL:
            raise unknown(join("", key))
    fields = {key: value for key, value in body.items() if value is not None}
    for key, reason in _REFUSED.items():
        if key in fields:
            raise unsupported(key, reason)
    if fields.get("background") is not None and check_bool(fields["background"], "background"):
        raise unsupported("background", "Background mode is not supported: send the request without it.")
    ignored = [key for key in fields if key in IGNORED_FIELDS]

    model = fields.get("model")
    if model is None:
        raise missing("model")
    model = check_str(model, "model", non_empty=True, max_len=MAX_MODEL_CHARS)
    stream = check_bool(fields.get("stream", False), "stream")
    store = check_bool(fields.get("store", True), "store")
    previous = fields.get("previous_response_id")
    if previous is not None:
        previous = check_str(previous, "previous_response_id", non_empty=True)
        if history is None:
            raise previous_response_not_found(previous)
    past = tuple(normalize_items(list(history), (), "history")) if previous is not None and history else ()

    if "input" not in fields:
        raise missing("input")
    items = normalize_items(fields["input"], past)

    chat: dict[str, Any] = {"model": model}
    messages: list[dict[str, Any]] = []
    instructions = fields.get("instructions")
    if instructions is not None:
        instructions = check_str(instructions, "instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    paired = [(item, f"history[{i}]") for i, item in enumerate(past)]
    paired += [(item, f"input[{i}]") for i, item in enumerate(items)]
    messages += items_to_messages(paired)
    if not messages:
        raise invalid(
            "Invalid 'input': it holds nothing to send to the model (no message, tool call or tool "
            "output, and no instructions).",
            "input",
            "empty_array",
        )
    chat["messages"] = messages
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}

    tools = convert_tools(fields["tools"]) if "tools" in fields else ToolSet()
    ignored += [f"tools.{kind}" for kind in tools.dropped]
    choice = convert_tool_choice(fields.get("tool_choice", "auto"), tools)
    if choice.tools:
        chat["tools"] = list(choice.tools)
        if "tool_choice" in fields and choice.chat is not None:
            chat["tool_choice"] = choice.chat
    parallel = fields.get("parallel_tool_calls")
    if parallel is not None:
        check_bool(parallel, "parallel_tool_calls")
        if choice.tools:
            chat["parallel_tool_calls"] = parallel

    if "max_output_tokens" in fields:
        chat["max_tokens"] = check_int(fields["max_output_tokens"], "max_output_tokens", 1, MAX_OUTPUT_TOKENS)
    if "temperature" in fields:
        chat["temperature"] = check_number(fields["temperature"], "temperature", 0, 2)
    if "top_p" in fields:
        chat["top_p"] = check_number(fields["top_p"], "top_p", 0, 1, lo_open=True)
    reasoning_echo = None
    if "reasoning" in fields:
        reasoning_echo, effort, reasoning_ignored = _reasoning(fields["reasoning"])
        if effort is not None:
            chat["reasoning_effort"] = effort
        ignored += reasoning_ignored
    text_echo: dict[str, Any] = {"format": {"type": "text"}}
    if "text" in fields:
        text = convert_text(fields["text"])
        if text.response_format is not None:
            chat["response_format"] = text.response_format
        if text.verbosity is not None:
            ignored.append("text.verbosity")
        text_echo = dict(fields["text"])
        text_echo.setdefault("format", {"type": "text"})
    metadata: dict[str, str] = {}
    if "metadata" in fields:
        metadata = _metadata(fields["metadata"])
        if metadata:
            chat["metadata"] = metadata
    user = _end_user(fields, ignored)
    if user is not None:
        chat["user"] = user
    for key in ("provider", "models"):
        if key in fields:
            chat[key] = fields[key]
    if "include" in fields:
        check_array(fields["include"], "include")

    echo = {
        "instructions": instructions,
        "tools": list(fields.get("tools", [])),
        "tool_choice": fields.get("tool_choice", "auto"),
        "parallel_tool_calls": fields.get("parallel_tool_calls", True),
        "temperature": fields.get("temperature"),
        "top_p": fields.get("top_p"),
        "max_output_tokens": fields.get("max_output_tokens"),
        "previous_response_id": previous,
        "reasoning": reasoning_echo,
        "text": text_echo,
        "metadata": metadata,
        "store": store,
        "user": fields.get("user"),
    }
    return ResponsesRequest(
        chat=chat,
        model=model,
        stream=stream,
        store=store,
        previous_response_id=previous,
        input_items=tuple(items),
        history=past,
        ignored=tuple(dict.fromkeys(ignored)),
        echo=echo,
        tool_namespaces=dict(tools.namespaced),
    )


def _reasoning(value: object) -> tuple[dict[str, Any], str | None, list[str]]:
    """(echo, chat reasoning_effort, ignored keys) for the `reasoning` object."""
    reasoning = check_object(value, "reasoning")
    ignored: list[str] = []
    for key in reasoning:
        if key not in ("effort", "summary", "generate_summary", "context", "mode"):
            raise unknown(join("reasoning", key))
    effort = reasoning.get("effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        if type(effort) is not str:
            raise wrong_type("reasoning.effort", "a string", effort)
        raise not_one_of("reasoning.effort", effort, REASONING_EFFORTS)
    summary = None
    for key in ("summary", "generate_summary"):
        value = reasoning.get(key)
        if value is None:
            continue
        if value not in REASONING_SUMMARIES:
            if type(value) is not str:
                raise wrong_type(f"reasoning.{key}", "a string", value)
            raise not_one_of(f"reasoning.{key}", value, REASONING_SUMMARIES)
        summary = summary or value
        ignored.append(f"reasoning.{key}")
    ignored += [f"reasoning.{key}" for key in ("context", "mode") if reasoning.get(key) is not None]
    return {"effort": effort, "summary": summary}, effort, ignored


def _metadata(value: object) -> dict[str, str]:
    pairs = check_object(value, "metadata")
    if len(pairs) > MAX_METADATA_PAIRS:
        raise too_many("metadata", MAX_METADATA_PAIRS, len(pairs), "pairs")
    for key, item in pairs.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise bad_value(
                "metadata", f"keys must be strings of at most {MAX_METADATA_KEY_CHARS} characters."
            )
        check_str(item, join("metadata", key), max_len=MAX_METADATA_VALUE_CHARS)
    return dict(pairs)


def _end_user(fields: dict[str, Any], ignored: list[str]) -> str | None:
    """The chat `user`: `user`, else `safety_identifier`, which names the same end user."""
    user = fields.get("user")
    if user is not None:
        user = check_str(user, "user")
    safety = fields.get("safety_identifier")
    if safety is None:
        return user
    safety = check_str(safety, "safety_identifier")
    if user is None:
        ignored.remove("safety_identifier")
        return safety
    return user
