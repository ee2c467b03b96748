"""A request-body schema for the chat endpoints, laid over the published OpenAPI document.

The gateway's chat and quote handlers read the raw request (to control JSON parsing and body
limits), so Litestar publishes them without a body and a fuzzer would only ever send empty POSTs.
This compact schema of the common fields lets schemathesis generate bodies, valid and not.
"""

from __future__ import annotations

import copy

MODELS = ["openai/gpt-oss-120b", "zai-org/GLM-5.2", "deepseek-ai/DeepSeek-V4-Flash-0731"]
FRONT_ENDS = ["baseten", "xpay", "orthogonal"]
_SHORT = {"type": "string", "minLength": 1, "maxLength": 24}

CHAT_BODY = {
    "type": "object",
    "required": ["model", "messages"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "enum": MODELS},
        "messages": {
            "type": "array", "minItems": 1, "maxItems": 4,
            "items": {
                "type": "object", "required": ["role", "content"], "additionalProperties": False,
                "properties": {
                    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
                    "content": {"type": "string", "maxLength": 80},
                },
            },
        },
        "stream": {"type": "boolean"},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 64},
        "max_completion_tokens": {"type": "integer", "minimum": 1, "maximum": 64},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**31},
        "n": {"type": "integer", "enum": [1]},
        "user": _SHORT,
        "stop": {"anyOf": [_SHORT, {"type": "array", "items": _SHORT, "maxItems": 4}]},
        "reasoning_effort": {"type": "string", "enum": ["low", "medium", "high"]},
        "metadata": {"type": "object", "maxProperties": 4, "additionalProperties": _SHORT},
        "provider": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "only": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": FRONT_ENDS}},
                "sort": {"type": "string", "enum": ["price", "latency", "throughput"]},
                "allow_fallbacks": {"type": "boolean"},
            },
        },
    },
}

BODY_OPERATIONS = ("/v1/chat/completions", "/v1/quote")


def with_chat_bodies(document: dict) -> dict:
    """A copy of the published document whose chat and quote operations declare a JSON body."""
    out = copy.deepcopy(document)
    for path in BODY_OPERATIONS:
        operation = out["paths"][path]["post"]
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": CHAT_BODY}}}
    return out
