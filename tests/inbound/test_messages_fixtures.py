"""Requests captured from real clients (Claude Code 2.1.197, anthropic Python SDK 2.14): see fixtures/README.md."""

from __future__ import annotations

from service.inbound.messages_response import chat_to_message
from tests.inbound.stream_support import accumulate, run_stream
from tests.inbound.support import chat_view, fixture, translate

CLAUDE_CODE_TOOLS = 24


def test_claude_codes_first_turn_is_accepted_and_translated() -> None:
    request = translate(fixture("claude_code_messages.json"))
    chat = request.chat
    assert (request.model, request.stream) == ("claude-opus-4-8", True)
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["max_tokens"] == 64000
    assert chat["reasoning"] == {
        "enabled": True,
        "effort": "high",
    }  # thinking adaptive + output_config.effort
    assert chat["user"].startswith('{"device_id":')
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "system"]
    system = chat["messages"][0]["content"]
    assert system.startswith("You are a Claude agent") and "x-anthropic-billing-header" not in system
    assert chat["messages"][1]["content"][1] == {"type": "text", "text": "say hi"}
    assert chat["messages"][2]["content"].startswith("Available agent types")
    assert len(chat["tools"]) == CLAUDE_CODE_TOOLS
    assert {tool["function"]["name"] for tool in chat["tools"]} >= {
        "Bash",
        "Read",
        "Edit",
        "Write",
        "WebFetch",
    }
    assert request.ignored == (
        "context_management",
        "messages[0].content[1].cache_control",
        "system[0]",
        "system[1].cache_control",
        "system[2].cache_control",
    )
    view = chat_view(request)
    assert (view.has_tools, view.stream, view.include_usage, view.max_output_tokens) == (
        True,
        True,
        True,
        64000,
    )


def test_claude_codes_tool_round_trip_turn() -> None:
    request = translate(fixture("claude_code_tool_turn.json"))
    chat = request.chat["messages"]
    assert [m["role"] for m in chat] == ["system", "user", "system", "assistant", "tool"]
    assert chat[3] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "toolu_recorder01",
                "type": "function",
                "function": {"name": "Read", "arguments": '{"file_path":"/work/scratch/cc-work/hello.txt"}'},
            }
        ],
        "reasoning_content": "I should look at the file first.",
    }
    assert chat[4] == {
        "role": "tool",
        "tool_call_id": "toolu_recorder01",
        "content": "1\thello from the fixture file\n2\t",
    }
    assert "messages[3].content[0].cache_control" in request.ignored


def test_claude_code_gets_back_what_it_sent_the_tool_call_for() -> None:
    """Our streamed answer to its first turn, accumulated, is the assistant turn it sent back next."""
    request = translate(fixture("claude_code_messages.json"))
    usage = {
        "prompt_tokens": 9000,
        "completion_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 8000},
        "cost": 0.0031,
    }
    call = {
        "index": 0,
        "id": "toolu_recorder01",
        "type": "function",
        "function": {"name": "Read", "arguments": ""},
    }
    deltas = [
        {"role": "assistant", "reasoning_content": "I should look at the file first."},
        {"tool_calls": [call]},
        {
            "tool_calls": [
                {"index": 0, "function": {"arguments": '{"file_path": "/work/scratch/cc-work/hello.txt"}'}}
            ]
        },
    ]
    chunks = [
        {"id": "chatcmpl-r1", "model": "moonshotai/Kimi-K2.6", "choices": [{"index": 0, "delta": d}]}
        for d in deltas
    ]
    chunks.append(
        {
            "id": "chatcmpl-r1",
            "model": "moonshotai/Kimi-K2.6",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
        }
    )
    chunks.append({"id": "chatcmpl-r1", "model": "moonshotai/Kimi-K2.6", "choices": [], "usage": usage})
    message = accumulate(run_stream(request, chunks))
    sent_back = fixture("claude_code_tool_turn.json")["messages"][2]["content"]
    assert [{k: v for k, v in block.items() if k != "citations"} for block in message["content"]] == sent_back
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["cache_read_input_tokens"]) == (1000, 8000)


def test_the_sdk_request_with_tools_and_thinking() -> None:
    request = translate(fixture("sdk_tools_thinking.json"))
    chat = request.chat
    assert chat["reasoning"] == {"max_tokens": 2048}
    assert chat["stop"] == ["\n\nHuman:"] and chat["user"] == "user-1234" and chat["tool_choice"] == "auto"
    alias = chat["tools"][1]["function"]["name"]
    assert len(alias) == 64
    assert dict(request.tool_names) == {
        alias: "mcp__maps__distance_between_two_named_places_in_kilometres_by_road"
    }
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user"]
    assert chat["messages"][1]["content"][1]["image_url"]["url"].startswith(
        "data:image/png;base64,iVBORw0KGgo"
    )
    assistant = chat["messages"][2]
    assert assistant["reasoning_content"] == "I need the weather and the distance."
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["get_weather", alias]
    assert [(m["tool_call_id"], m["content"]) for m in chat["messages"][3:5]] == [
        ("toolu_01B", "465 km"),
        ("toolu_01A", "18 C, cloudy"),
    ]
    assert request.ignored == (
        "messages[1].content[0].signature",
        "system[0].cache_control",
        "tools[1].cache_control",
    )

    answer = {
        "id": "chatcmpl-z",
        "model": "zai-org/GLM-5.2",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c9",
                            "type": "function",
                            "function": {"name": alias, "arguments": '{"from":"Lyon","to":"Nice"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    block = chat_to_message(answer, request=request)["content"][0]
    assert block["name"] == "mcp__maps__distance_between_two_named_places_in_kilometres_by_road"
