"""OpenAPI schemas of the agent-facing APIs: Anthropic Messages and OpenAI Responses.

They describe what the translators (service.inbound) accept and answer, closely enough for clients
and for schemathesis; the combinations a schema cannot express (a tool_result answering a
tool_use, an item_reference to history) are the translators' to refuse with a 400.
"""

from __future__ import annotations

from typing import Any

from service.api.openapi_chat import NO_NUL, JsonSchema
from service.chat.validate_params import MAX_OUTPUT_TOKENS

_TEXT: JsonSchema = {"type": "string", "pattern": NO_NUL, "maxLength": 100_000}
_NAME: JsonSchema = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}
_OBJECT: JsonSchema = {"type": "object"}

ANTHROPIC_ERROR: JsonSchema = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {"type": "object", "required": ["type", "message"],
                  "properties": {"type": {"type": "string"}, "message": {"type": "string"}}},
        "request_id": {"type": "string"},
    },
}

_TEXT_BLOCK: JsonSchema = {"type": "object", "required": ["type", "text"], "additionalProperties": False,
                           "properties": {"type": {"const": "text"}, "text": _TEXT}}
_ANTHROPIC_TOOL: JsonSchema = {
    "type": "object", "required": ["name", "input_schema"], "additionalProperties": False,
    "properties": {"name": _NAME, "description": _TEXT,
                   "input_schema": {"type": "object", "required": ["type"],
                                    "properties": {"type": {"const": "object"}}}},
}

MESSAGES_REQUEST: JsonSchema = {
    "type": "object",
    "required": ["model", "messages", "max_tokens"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_NUL},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 262_144},
        "system": {"oneOf": [_TEXT, {"type": "array", "items": _TEXT_BLOCK, "maxItems": 8}]},
        "messages": {"type": "array", "minItems": 1, "maxItems": 64, "items": {
            "type": "object", "required": ["role", "content"], "additionalProperties": False,
            "properties": {"role": {"enum": ["user", "assistant"]},
                           "content": {"oneOf": [{**_TEXT, "minLength": 1},
                                                 {"type": "array", "minItems": 1, "maxItems": 8,
                                                  "items": _TEXT_BLOCK}]}}}},
        "stop_sequences": {"type": "array", "items": {**_TEXT, "minLength": 1, "maxLength": 200}, "maxItems": 4},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 0, "maximum": 1000},
        "tools": {"type": "array", "items": _ANTHROPIC_TOOL, "maxItems": 16},
        "tool_choice": {"type": "object", "required": ["type"],
                        "properties": {"type": {"enum": ["auto", "any", "none"]},
                                       "disable_parallel_tool_use": {"type": "boolean"}},
                        "additionalProperties": False},
        "thinking": {"oneOf": [
            {"type": "object", "required": ["type", "budget_tokens"], "additionalProperties": False,
             "properties": {"type": {"const": "enabled"}, "budget_tokens": {"type": "integer", "minimum": 1024,
                                                                                  "maximum": MAX_OUTPUT_TOKENS}}},
            {"type": "object", "required": ["type"], "additionalProperties": False,
             "properties": {"type": {"const": "disabled"}}}]},
        "metadata": {"type": "object", "additionalProperties": False,
                     "properties": {"user_id": {"type": "string", "maxLength": 256, "pattern": NO_NUL}}},
        "stream": {"type": "boolean"},
        "context_management": {**_OBJECT, "description": "Accepted and ignored."},
        "service_tier": {"type": "string", "description": "Accepted and ignored."},
        "provider": {**_OBJECT, "description": "Switchyard's routing preferences, as on chat completions."},
    },
}

MESSAGE: JsonSchema = {
    "type": "object",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string"}, "type": {"const": "message"}, "role": {"const": "assistant"},
        "model": {"type": "string"},
        "content": {"type": "array", "items": {"type": "object", "required": ["type"]}},
        "stop_reason": {"type": ["string", "null"]}, "stop_sequence": {"type": ["string", "null"]},
        "usage": {"type": "object", "required": ["input_tokens", "output_tokens"]},
    },
}

COUNT_TOKENS_REQUEST: JsonSchema = {
    **MESSAGES_REQUEST, "required": ["model", "messages"],
    "properties": {k: v for k, v in MESSAGES_REQUEST["properties"].items() if k not in ("stream", "service_tier")},
}
TOKEN_COUNT: JsonSchema = {"type": "object", "required": ["input_tokens"],
                           "properties": {"input_tokens": {"type": "integer", "minimum": 0}}}

_INPUT_ITEM: JsonSchema = {
    "type": "object", "required": ["role", "content"], "additionalProperties": False,
    "properties": {"type": {"const": "message"}, "role": {"enum": ["user", "system", "developer"]},
                   "content": {**_TEXT, "minLength": 1}},
}
_FUNCTION_TOOL: JsonSchema = {
    "type": "object", "required": ["type", "name", "parameters"], "additionalProperties": False,
    "properties": {"type": {"const": "function"}, "name": _NAME, "description": _TEXT,
                   "parameters": {"type": "object", "required": ["type"], "properties": {"type": {"const": "object"}}},
                   "strict": {"type": "boolean"}},
}

RESPONSES_REQUEST: JsonSchema = {
    "type": "object",
    "required": ["model", "input"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_NUL},
        "input": {"oneOf": [{**_TEXT, "minLength": 1}, {"type": "array", "minItems": 1, "maxItems": 32,
                                                         "items": _INPUT_ITEM}]},
        "instructions": _TEXT,
        "tools": {"type": "array", "items": _FUNCTION_TOOL, "maxItems": 16},
        "tool_choice": {"enum": ["auto", "none", "required"]},
        "parallel_tool_calls": {"type": "boolean"},
        "max_output_tokens": {"type": "integer", "minimum": 16, "maximum": 262_144},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "reasoning": {"type": "object", "additionalProperties": False,
                      "properties": {"effort": {"enum": ["low", "medium", "high"]},
                                     "summary": {"enum": ["auto", "concise", "detailed"]}}},
        "metadata": {"type": "object", "maxProperties": 16,
                     "additionalProperties": {"type": "string", "maxLength": 512, "pattern": NO_NUL},
                     "propertyNames": {"maxLength": 64, "pattern": NO_NUL}},
        "user": {"type": "string", "maxLength": 256, "pattern": NO_NUL},
        "store": {"type": "boolean"},
        "stream": {"type": "boolean"},
        "previous_response_id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_NUL},
        "provider": {**_OBJECT, "description": "Switchyard's routing preferences, as on chat completions."},
    },
}

RESPONSE: JsonSchema = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {"type": "string"}, "object": {"const": "response"}, "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]}, "model": {"type": "string"},
        "output": {"type": "array", "items": {"type": "object", "required": ["type"]}},
        "usage": {"type": ["object", "null"]},
    },
}
RESPONSE_DELETED: JsonSchema = {"type": "object", "required": ["id", "object", "deleted"],
                                "properties": {"id": {"type": "string"}, "object": {"const": "response.deleted"},
                                               "deleted": {"const": True}}}

def _nullable_optionals(schema: JsonSchema) -> JsonSchema:
    """Both translators read an optional field sent as null as absent, as OpenAI and Anthropic do."""
    required = set(schema.get("required", ()))
    properties = {name: (prop if name in required else {"anyOf": [prop, {"type": "null"}]})
                  for name, prop in schema["properties"].items()}
    return {**schema, "properties": properties}


MESSAGES_REQUEST = _nullable_optionals(MESSAGES_REQUEST)
COUNT_TOKENS_REQUEST = _nullable_optionals(COUNT_TOKENS_REQUEST)
RESPONSES_REQUEST = _nullable_optionals(RESPONSES_REQUEST)

MESSAGES_EXAMPLE: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 256,
                                    "messages": [{"role": "user", "content": "Hello"}]}
RESPONSES_EXAMPLE: dict[str, Any] = {"model": "openai/gpt-oss-120b", "input": "Hello", "store": False}
