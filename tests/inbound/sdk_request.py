"""Send one Messages request with tools and thinking through the anthropic SDK, to record it.

Used by hand with the recorder (see fixtures/README.md), never by the test suite:

    python -m tests.inbound.sdk_request http://127.0.0.1:8788
"""

from __future__ import annotations

import base64
import sys

import anthropic

PNG_1X1 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005000201e2"
        "7f2f6d0000000049454e44ae426082"
    )
).decode()

TOOLS: list[anthropic.types.ToolParam] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
    {
        "name": "mcp__maps__distance_between_two_named_places_in_kilometres_by_road",
        "description": "Road distance between two places.",
        "input_schema": {
            "type": "object",
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
            "required": ["from", "to"],
        },
        "cache_control": {"type": "ephemeral"},
    },
]
MESSAGES: list[anthropic.types.MessageParam] = [
    {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "What's the weather in Paris, and how far is it from Lyon? Also, what is in this image?",
            },
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": "I need the weather and the distance.",
                "signature": "EqQBCgIYAhIM",
            },
            {"type": "text", "text": "Let me check both."},
            {
                "type": "tool_use",
                "id": "toolu_01A",
                "name": "get_weather",
                "input": {"city": "Paris", "unit": "c"},
            },
            {
                "type": "tool_use",
                "id": "toolu_01B",
                "name": "mcp__maps__distance_between_two_named_places_in_kilometres_by_road",
                "input": {"from": "Paris", "to": "Lyon"},
            },
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01B",
                "content": [{"type": "text", "text": "465 km"}],
            },
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18 C, cloudy", "is_error": False},
            {"type": "text", "text": "Thanks. Answer in one sentence."},
        ],
    },
]


def main() -> None:
    client = anthropic.Anthropic(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=4096,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": False},
        stop_sequences=["\n\nHuman:"],
        metadata={"user_id": "user-1234"},
        messages=MESSAGES,
    ) as stream:
        print(stream.get_final_message().model_dump_json())


if __name__ == "__main__":
    main()
