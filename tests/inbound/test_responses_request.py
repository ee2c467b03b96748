"""Responses requests as Chat Completions requests: input items, messages, merging and history
(tools in test_responses_tools_request.py, the other fields in test_responses_fields_request.py)."""

from __future__ import annotations

import pytest

from tests.inbound.responses_request_support import LOOKUP, call, output, refused, translate, user

# Input and messages.


def test_string_input_is_one_user_message() -> None:
    request = translate({"input": "Hello"})
    assert request.chat == {
        "model": "moonshotai/Kimi-K2.6",
        "messages": [{"role": "user", "content": "Hello"}],
    }
    assert request.input_items == (
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
    )
    assert request.stream is False and request.store is True and request.ignored == ()


def test_instructions_lead_as_system_message() -> None:
    request = translate({"instructions": "Be brief.", "input": "Hi"})
    assert request.chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert translate({"instructions": "", "input": "Hi"}).chat["messages"] == [
        {"role": "user", "content": "Hi"}
    ]


def test_message_roles_and_text_parts() -> None:
    request = translate(
        {
            "input": [
                {"role": "system", "content": "S"},  # an easy input message has no type
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "D"}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "Hel", "annotations": []},
                        {"type": "output_text", "text": "lo", "annotations": [], "logprobs": []},
                    ],
                },
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
            ]
        }
    )
    assert request.chat["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "system", "content": "D"},  # Baseten's engines know no developer role
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "Hello"},
        {"role": "assistant", "content": "", "refusal": "No."},
    ]
    assert request.input_items[3]["id"] == "msg_1"
    assert request.input_items[0]["content"] == [{"type": "input_text", "text": "S"}]


def test_images_and_audio_in_user_messages() -> None:
    request = translate(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AAAA",
                            "detail": "original",
                        },
                        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    ],
                }
            ]
        }
    )
    assert request.chat["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]


def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages() -> None:
    request = translate(
        {
            "tools": [LOOKUP],
            "input": [
                user("Look up two things"),
                {"type": "message", "role": "assistant", "content": "Looking."},
                call("c1"),
                call("c2", arguments='{"q": 2}'),
                output("c1", "one"),
                output("c2", "two"),
                call("c3"),  # a second model turn: a new assistant message
                output("c3"),
            ],
        }
    )
    assert request.chat["messages"] == [
        {"role": "user", "content": "Look up two things"},
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}},
                {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 2}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c3", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c3", "content": "42"},
    ]


def test_function_call_output_parts_are_text_parts() -> None:
    request = translate(
        {
            "tools": [LOOKUP],
            "input": [
                user("x"),
                call("c1"),
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                },
            ],
        }
    )
    assert request.chat["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }


def test_reasoning_rides_on_the_next_assistant_message() -> None:
    request = translate(
        {
            "tools": [LOOKUP],
            "input": [
                user("q"),
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [
                        {"type": "summary_text", "text": "First"},
                        {"type": "summary_text", "text": "second"},
                    ],
                    "encrypted_content": None,
                },
                call("c1"),
                output("c1"),
                {
                    "type": "reasoning",
                    "id": "rs_2",
                    "summary": [{"type": "summary_text", "text": "short"}],
                    "content": [{"type": "reasoning_text", "text": "the full thought"}],
                },
                {"type": "message", "role": "assistant", "content": "Done."},
            ],
        }
    )
    messages = request.chat["messages"]
    assert messages[1]["reasoning_content"] == "First\n\nsecond"
    assert messages[1]["tool_calls"][0]["id"] == "c1"
    assert messages[3] == {"role": "assistant", "content": "Done.", "reasoning_content": "the full thought"}


def test_reasoning_without_an_answer_after_it_is_dropped() -> None:
    request = translate(
        {
            "input": [
                user("q"),
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "orphan"}]},
                user("again"),
                {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAA..."},
                {"type": "message", "role": "assistant", "content": "ok"},
            ]
        }
    )
    assert request.chat["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "ok"},  # encrypted reasoning is unreadable here: no text
    ]


def test_item_reference_resolves_from_this_input_and_from_history() -> None:
    history = [
        {
            "type": "message",
            "id": "msg_old",
            "role": "user",
            "content": [{"type": "input_text", "text": "old"}],
        }
    ]
    request = translate(
        {
            "previous_response_id": "resp_1",
            "input": [
                {"type": "message", "id": "msg_new", "role": "user", "content": "new"},
                {"type": "item_reference", "id": "msg_new"},
                {"id": "msg_old"},  # a reference may come without its type
            ],
        },
        history=history,
    )
    assert [m["content"] for m in request.chat["messages"]] == ["old", "new", "new", "old"]
    error = refused({"input": [{"type": "item_reference", "id": "msg_missing"}]})
    assert error.param == "input[0].id"


def test_previous_response_history_comes_after_instructions() -> None:
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"id": "rs_a_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "greet"}]},
        {
            "id": "msg_a_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
        },
    ]
    request = translate(
        {"instructions": "Be kind.", "previous_response_id": "resp_a", "input": "And again?"}, history=history
    )
    assert request.chat["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "greet"},
        {"role": "user", "content": "And again?"},
    ]
    assert request.previous_response_id == "resp_a"
    assert len(request.history) == 3 and len(request.input_items) == 1


def test_previous_response_that_was_not_found() -> None:
    error = refused({"previous_response_id": "resp_gone", "input": "x"}, history=None)
    assert (error.param, error.code) == ("previous_response_id", "previous_response_not_found")


@pytest.mark.parametrize(
    ("item", "param"),
    [
        (
            {"type": "message", "role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]},
            "input[0].content[0].file_id",
        ),
        (
            {"type": "message", "role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]},
            "input[0].content[0].type",
        ),
        (
            {
                "type": "message",
                "role": "system",
                "content": [{"type": "input_image", "image_url": "https://x"}],
            },
            "input[0].content[0].type",
        ),
        ({"type": "message", "role": "tool", "content": "x"}, "input[0].role"),
        ({"type": "message", "role": "user"}, "input[0].content"),
        ({"type": "message", "role": "user", "content": []}, "input[0].content"),
        (
            {"type": "message", "role": "user", "content": [{"type": "input_text"}]},
            "input[0].content[0].text",
        ),
        (
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_image", "image_url": "https://x", "detail": "huge"}],
            },
            "input[0].content[0].detail",
        ),
        ({"type": "function_call", "name": "f", "arguments": "{}"}, "input[0].call_id"),
        ({"type": "function_call", "call_id": "c", "arguments": "{}"}, "input[0].name"),
        ({"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}, "input[0].arguments"),
        ({"type": "function_call_output", "call_id": "c", "output": "x"}, "input[0].call_id"),
        (
            {"type": "reasoning", "id": "rs", "summary": [{"type": "reasoning_text", "text": "x"}]},
            "input[0].summary[0].type",
        ),
        ({"type": "computer_call", "call_id": "c"}, "input[0].type"),
        ({"type": "web_search_call", "id": "ws"}, "input[0].type"),
        ({"type": "local_shell_call", "id": "ls"}, "input[0].type"),
        ({"type": "custom_tool_call", "call_id": "c", "name": "n", "input": ""}, "input[0].type"),
        ({"content": "no role, no type"}, "input[0].type"),
        ("just a string", "input[0]"),
    ],
)
def test_bad_items_are_refused_with_their_path(item: object, param: str) -> None:
    assert refused({"input": [item]}).param == param


def test_images_in_tool_output_are_refused() -> None:
    error = refused(
        {
            "input": [
                user("x"),
                call("c1"),
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_image", "image_url": "https://x"}],
                },
            ]
        }
    )
    assert (error.param, error.code) == ("input[2].output[0].type", "unsupported_value")


def test_input_with_nothing_for_the_model_is_refused() -> None:
    assert refused({"input": []}).param == "input"
    assert refused({"input": [{"type": "reasoning", "id": "r", "summary": []}]}).param == "input"
    assert refused({}).param == "input"
