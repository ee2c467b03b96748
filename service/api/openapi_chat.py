"""JSON Schemas of the chat-completions request and answer, as the OpenAPI document publishes them.

The request schema is written from the validator (`service.chat.validate*`) and shares its limits.
It describes a subset of what the validator accepts, never more: every body it admits passes
validation. Where JSON Schema cannot say a rule, the narrower form is published and the
description names what else is accepted (a named `tool_choice` must name a declared tool; an
agreeing `reasoning_effort` with `reasoning` or `enable_thinking`; explicit nulls, which count as
absent). Parameters refused by name are listed in the description, not as properties.
"""

from __future__ import annotations

from typing import Any

from service.catalog.model import FRONT_ENDS
from service.chat.params import PARAMS, Fate
from service.chat.reasoning import MAX_REASONING_BUDGET, REASONING_EFFORTS
from service.chat.validate import MAX_MODEL_CHARS, MAX_STOP_CHARS, MAX_STOP_SEQUENCES
from service.chat.validate_messages import MAX_MESSAGES
from service.chat.validate_params import (
    INT64_MAX,
    INT64_MIN,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE_CHARS,
    MAX_OUTPUT_TOKENS,
    MAX_TOKEN_ID,
    MAX_TOP_K,
    MAX_TRUNCATE_PROMPT_TOKENS,
    MAX_USER_CHARS,
)
from service.chat.validate_provider import MAX_MODELS, SORTS
from service.chat.validate_tools import MAX_TOOLS, RESPONSE_FORMAT_KINDS

JsonSchema = dict[str, Any]

# Text the gateway stores may not hold NUL (Postgres refuses it).
NO_NUL = "^[^\\u0000]*$"
_NAME = "^[a-zA-Z0-9_-]{1,64}$"

BOOL: JsonSchema = {"type": "boolean"}
STRING: JsonSchema = {"type": "string"}
OBJECT: JsonSchema = {"type": "object"}


def _int(lo: int | None = None, hi: int | None = None) -> JsonSchema:
    out: JsonSchema = {"type": "integer"}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def _num(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> JsonSchema:
    out: JsonSchema = {"type": "number"}
    if lo is not None:
        out["exclusiveMinimum" if lo_open else "minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def _obj(properties: dict[str, JsonSchema], required: tuple[str, ...] = ()) -> JsonSchema:
    out: JsonSchema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        out["required"] = list(required)
    return out


def _const(value: str) -> JsonSchema:
    return {"type": "string", "const": value}


NULL: JsonSchema = {"type": "null"}


def _opt(schema: JsonSchema) -> JsonSchema:
    """An optional key the validator also takes as null (null counts as absent)."""
    return {"anyOf": [schema, NULL]}


def _if_present(name: str, then: JsonSchema) -> JsonSchema:
    """`then` holds whenever `name` is present and not null."""
    return {"anyOf": [{"not": {"required": [name]}}, {"required": [name], "properties": {name: NULL}}, then]}


def _nonempty(max_length: int | None = None) -> JsonSchema:
    out: JsonSchema = {"type": "string", "minLength": 1}
    if max_length is not None:
        out["maxLength"] = max_length
    return out


_TEXT_PART = _obj({"type": _const("text"), "text": STRING, "prompt_cache_breakpoint": _opt(OBJECT)},
                  ("type", "text"))
_IMAGE_PART = _obj({
    "type": _const("image_url"),
    "image_url": _obj({"url": _nonempty(), "detail": _opt({"type": "string", "enum": ["auto", "low", "high"]})},
                      ("url",)),
}, ("type", "image_url"))
_AUDIO_PART = _obj({
    "type": _const("input_audio"),
    "input_audio": _obj({"data": _nonempty(), "format": {"type": "string", "enum": ["wav", "mp3"]}},
                        ("data", "format")),
}, ("type", "input_audio"))
_TEXT_CONTENT: JsonSchema = {"anyOf": [STRING, {"type": "array", "minItems": 1, "items": _TEXT_PART}]}
_USER_CONTENT: JsonSchema = {"anyOf": [
    STRING, {"type": "array", "minItems": 1, "items": {"anyOf": [_TEXT_PART, _IMAGE_PART, _AUDIO_PART]}},
]}
_TOOL_CALL = _obj({
    "id": _nonempty(),
    "type": _const("function"),
    "function": _obj({"name": _nonempty(), "arguments": STRING}, ("name", "arguments")),
}, ("id", "type", "function"))


def _message(role: str, content: JsonSchema, **extra: JsonSchema) -> JsonSchema:
    # Every extra key of a role is required (a tool message's tool_call_id).
    return _obj({"role": _const(role), "content": content, "name": _opt(STRING), **extra},
                ("role", "content", *extra))


_TOOL_CALLS: JsonSchema = {"type": "array", "minItems": 1, "items": _TOOL_CALL}
_ASSISTANT: JsonSchema = {
    **_obj({
        "role": _const("assistant"),
        "content": _opt(_TEXT_CONTENT),
        "name": _opt(STRING),
        "tool_calls": _opt(_TOOL_CALLS),
        "reasoning_content": _opt(STRING),
        "refusal": _opt(STRING),
    }, ("role",)),
    # A turn that only called tools carries no content.
    "anyOf": [{"required": ["content"], "properties": {"content": _TEXT_CONTENT}},
              {"required": ["tool_calls"], "properties": {"tool_calls": _TOOL_CALLS}}],
}
MESSAGE: JsonSchema = {"anyOf": [
    _message("system", _TEXT_CONTENT),
    _message("developer", _TEXT_CONTENT),
    _message("user", _USER_CONTENT),
    _ASSISTANT,
    _message("tool", _TEXT_CONTENT, tool_call_id=_nonempty()),
]}

_TOOL = _obj({
    "type": _const("function"),
    "function": _obj({
        "name": {"type": "string", "pattern": _NAME},
        "description": _opt(STRING),
        "parameters": _opt({"type": "object", "description": "A JSON Schema of the arguments."}),
        "strict": _opt(BOOL),
    }, ("name",)),
}, ("type", "function"))

_RESPONSE_FORMAT: JsonSchema = {"anyOf": [
    _obj({"type": _const("text")}, ("type",)),
    _obj({"type": _const("json_object")}, ("type",)),
    _obj({
        "type": _const("json_schema"),
        "json_schema": _obj({"name": {"type": "string", "pattern": _NAME}, "schema": _opt(OBJECT),
                             "strict": _opt(BOOL), "description": _opt(STRING)}, ("name",)),
    }, ("type", "json_schema")),
    {"type": "object", "required": ["type"], "description": "Engine formats; their other keys go to the engine.",
     "properties": {"type": {"type": "string", "enum": [k for k in RESPONSE_FORMAT_KINDS
                                                        if k in ("grammar", "structural_tag")]}}},
]}
_STOP_STRING = _nonempty(MAX_STOP_CHARS)
_TOKEN_IDS: JsonSchema = {"type": "array", "items": _int(0, MAX_TOKEN_ID)}
_FRONT_END_LIST: JsonSchema = {"type": "array", "uniqueItems": True,
                               "items": {"type": "string", "enum": list(FRONT_ENDS)}}
_REASONING: JsonSchema = {
    **_obj({
        "effort": _opt({"type": "string", "enum": list(REASONING_EFFORTS)}),
        "max_tokens": _opt({**_int(0, MAX_REASONING_BUDGET), "description": "A thinking budget in tokens; "
                            "mapped to the nearest effort a model takes."}),
        "exclude": _opt({**BOOL, "description": "Leave reasoning_content out of the answer."}),
        "enabled": _opt(BOOL),
    }),
    # Either an effort or a budget; and `enabled` agrees with them.
    "not": {"required": ["effort", "max_tokens"],
            "properties": {"effort": {"type": "string"}, "max_tokens": {"type": "integer"}}},
    "allOf": [
        {"if": {"required": ["enabled"], "properties": {"enabled": {"const": False}}},
         "then": {"properties": {"effort": {"enum": ["none", None]}, "max_tokens": {"enum": [0, None]}}}},
        {"if": {"required": ["enabled"], "properties": {"enabled": {"const": True}}},
         "then": {"properties": {"effort": {"not": {"const": "none"}},
                                 "max_tokens": {"anyOf": [{"type": "integer", "minimum": 1}, NULL]}}}},
    ],
}
# chat_template_args.enable_thinking as a boolean says what reasoning the client wants.
_NO_ENABLE_THINKING: JsonSchema = {"properties": {"chat_template_args": {"not": {
    "required": ["enable_thinking"], "properties": {"enable_thinking": {"type": "boolean"}}}}}}


def _properties() -> dict[str, JsonSchema]:
    return {
        "model": {"type": "string", "minLength": 1, "maxLength": MAX_MODEL_CHARS, "pattern": NO_NUL,
                  "description": "A model slug, `auto`, or a pool (see GET /v1/models)."},
        "messages": {"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES, "items": MESSAGE},
        "stream": BOOL,
        "stream_options": _obj({"include_usage": _opt(BOOL), "continuous_usage_stats": _opt(BOOL),
                                "include_obfuscation": _opt(BOOL)}),
        "max_tokens": _int(1, MAX_OUTPUT_TOKENS),
        "max_completion_tokens": _int(1, MAX_OUTPUT_TOKENS),
        "temperature": _num(0, 4),
        "top_p": _num(0, 1, lo_open=True),
        "frequency_penalty": _num(-2, 2),
        "presence_penalty": _num(-2, 2),
        "logit_bias": {"type": "object", "propertyNames": {"pattern": "^[0-9]{1,9}$"},
                       "additionalProperties": _num(-100, 100)},
        "logprobs": BOOL,
        "top_logprobs": _int(0, 20),
        "n": {"type": "integer", "const": 1},
        "seed": _int(INT64_MIN, INT64_MAX),
        "stop": {"anyOf": [_STOP_STRING, {"type": "array", "maxItems": MAX_STOP_SEQUENCES, "items": _STOP_STRING}]},
        "tools": {"type": "array", "minItems": 1, "maxItems": MAX_TOOLS, "items": _TOOL},
        "tool_choice": {"type": "string", "enum": ["none", "auto", "required"],
                        "description": "Also accepted: {\"type\": \"function\", \"function\": {\"name\": ...}} "
                                       "naming a function declared in `tools`."},
        "parallel_tool_calls": BOOL,
        "response_format": _RESPONSE_FORMAT,
        "reasoning_effort": {"type": "string", "enum": list(REASONING_EFFORTS),
                             "description": "Only models that take this effort are routed to."},
        "reasoning": {**_REASONING, "description": PARAMS["reasoning"].why},
        "user": {"type": "string", "maxLength": MAX_USER_CHARS, "pattern": NO_NUL},
        "metadata": {"type": "object", "maxProperties": MAX_METADATA_PAIRS,
                     "propertyNames": {"maxLength": MAX_METADATA_KEY_CHARS, "pattern": NO_NUL},
                     "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS,
                                              "pattern": NO_NUL}},
        "best_of": {"type": "integer", "const": 1},
        "top_k": {"anyOf": [{"type": "integer", "const": -1}, _int(1, MAX_TOP_K)]},
        "top_p_min": _num(0, 1),
        "min_p": _num(0, 1),
        "repetition_penalty": _num(0, lo_open=True),
        "length_penalty": _num(),
        "early_stopping": BOOL,
        "bad": {"anyOf": [STRING, {"type": "array", "items": STRING}]},
        "bad_token_ids": _TOKEN_IDS,
        "stop_token_ids": _TOKEN_IDS,
        "include_stop_str_in_output": BOOL,
        "ignore_eos": BOOL,
        "min_tokens": _int(0, MAX_OUTPUT_TOKENS),
        "skip_special_tokens": BOOL,
        "spaces_between_special_tokens": BOOL,
        "truncate_prompt_tokens": _int(1, MAX_TRUNCATE_PROMPT_TOKENS),
        "echo": BOOL,
        "add_generation_prompt": BOOL,
        "add_special_tokens": BOOL,
        "documents": {"type": "array", "items": {"type": "object", "additionalProperties": STRING}},
        "chat_template": STRING,
        "chat_template_args": {"type": "object", "description": "Arguments of the model's chat template; "
                               "`enable_thinking: true` turns reasoning on for opt-in models."},
        "disaggregated_params": OBJECT,
        "provider": _obj({
            "order": _opt(_FRONT_END_LIST),
            "only": _opt({**_FRONT_END_LIST, "minItems": 1}),
            "ignore": _opt(_FRONT_END_LIST),
            "allow_fallbacks": _opt(BOOL),
            "require_parameters": _opt(BOOL),
            "sort": _opt({"type": "string", "enum": list(SORTS)}),
            "max_cost_usd": _opt({**_num(0, lo_open=True), "description": "USD; also accepted as a decimal string."}),
        }),
        "models": {"type": "array", "minItems": 1, "maxItems": MAX_MODELS, "items": _nonempty()},
        "store": BOOL,
        "service_tier": STRING,
        "prompt_cache_key": STRING,
        "prompt_cache_retention": STRING,
        "prompt_cache_options": OBJECT,
        "safety_identifier": STRING,
        "prediction": {"type": "object", "properties": {"content": {"anyOf": [STRING, {"type": "array"}, NULL]}}},
        "modalities": {"type": "array", "maxItems": 2, "items": _const("text")},
        "verbosity": _const("medium"),
    }


def _described(properties: dict[str, JsonSchema]) -> dict[str, JsonSchema]:
    """Each property with its fate from the parameter table; the optional ones may be null."""
    out = {}
    for name, schema in properties.items():
        param = PARAMS[name]
        note = f"{param.fate.value}: {param.why}" if param.why else param.fate.value
        if "description" in schema:
            note = f"{schema['description']} ({note})"
        out[name] = {**(schema if name in _REQUIRED else _opt(schema)), "description": note}
    return out


_REQUIRED = ("model", "messages")


def chat_request_schema() -> JsonSchema:
    refused = ", ".join(f"`{n}` ({p.why})" for n, p in PARAMS.items() if p.fate is Fate.REFUSED)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(_REQUIRED),
        "description": "OpenAI's chat-completions request, Baseten's engine parameters, OpenRouter's "
                       "`reasoning` and `provider`. An explicit null counts as absent. Refused with a 400: "
                       + refused + ".",
        "properties": _described(_properties()),
        # Rules between fields, each holding when its field is present and not null.
        "allOf": [
            _if_present("top_logprobs", {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}}),
            _if_present("stream_options", {"required": ["stream"], "properties": {"stream": {"const": True}}}),
            _if_present("tool_choice", {"anyOf": [
                {"properties": {"tool_choice": {"const": "none"}}},
                {"required": ["tools"], "properties": {"tools": {"type": "array"}}}]}),
            _if_present("reasoning_effort", {"properties": {"reasoning": NULL}, **_NO_ENABLE_THINKING}),
            _if_present("reasoning", _NO_ENABLE_THINKING),
        ],
    }


CHAT_EXAMPLE: dict[str, Any] = {
    "model": "openai/gpt-oss-120b",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 64,
}

_USAGE: JsonSchema = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "cost": {"type": "number", "description": "What the tenant is billed for this request, in USD."},
    },
}

CHAT_COMPLETION: JsonSchema = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": STRING,
        "object": _const("chat.completion"),
        "created": {"type": "integer"},
        "model": STRING,
        "choices": {"type": "array", "items": {
            "type": "object",
            "required": ["index", "message"],
            "properties": {
                "index": {"type": "integer"},
                "message": {"type": "object", "required": ["role"], "properties": {
                    "role": _const("assistant"),
                    "content": {"type": ["string", "null"]},
                    "reasoning_content": {"type": ["string", "null"]},
                    "tool_calls": {"type": ["array", "null"]},
                }},
                "finish_reason": {"type": ["string", "null"]},
            },
        }},
        "usage": _USAGE,
    },
}

# One server-sent event of a stream (OpenAPI 3.1 reads a text/event-stream schema per event).
CHAT_EVENT: JsonSchema = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {
        "type": "string",
        "description": "A chat.completion.chunk as JSON (with cumulative `usage`, and `usage.cost` on the final "
                       "usage-only chunk whose `choices` is empty), an error as {\"error\": {...}} when the "
                       "stream fails after it started, and `[DONE]` last.",
    }},
}
