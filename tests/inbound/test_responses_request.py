"""Responses requests as Chat Completions requests: each item type, merging, fields, and refusals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.inbound.responses_request import IGNORED_FIELDS, ResponsesRequest, responses_to_chat


def translate(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> ResponsesRequest:
    request = responses_to_chat({"model": "moonshotai/Kimi-K2.6", **body}, history=history)
    validate_chat_request(request.chat)  # every translation must pass the gateway's own validator
    return request


def refused(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        responses_to_chat({"model": "moonshotai/Kimi-K2.6", **body}, history=history)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    return caught.value


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def call(call_id: str, name: str = "lookup", arguments: str = '{"q": 1}') -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def output(call_id: str, text: str = "42") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": text}


LOOKUP = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


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


# Tools and tool_choice.


def test_function_tools_are_nested_and_strict_kept_only_when_set() -> None:
    request = translate(
        {
            "input": "x",
            "tools": [
                {
                    "type": "function",
                    "name": "a",
                    "description": "A.",
                    "parameters": {"type": "object"},
                    "strict": True,
                },
                {"type": "function", "name": "b", "parameters": None, "strict": None, "defer_loading": False},
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert request.chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "a", "description": "A.", "parameters": {"type": "object"}, "strict": True},
        },
        {"type": "function", "function": {"name": "b"}},
    ]
    assert request.chat["tool_choice"] == "required"
    assert request.chat["parallel_tool_calls"] is False


def test_namespace_tools_are_flattened_and_mapped_back() -> None:
    request = translate(
        {
            "tools": [
                {
                    "type": "namespace",
                    "name": "agents",
                    "description": "Sub-agents.",
                    "tools": [
                        {
                            "type": "function",
                            "name": "spawn",
                            "parameters": {"type": "object"},
                            "strict": False,
                        }
                    ],
                }
            ],
            "input": [user("x"), {**call("c1", "spawn"), "namespace": "agents"}, output("c1")],
        }
    )
    assert request.chat["tools"][0]["function"]["name"] == "agents__spawn"
    assert request.tool_namespaces == {"agents__spawn": ("agents", "spawn")}
    assert request.chat["messages"][1]["tool_calls"][0]["function"]["name"] == "agents__spawn"


def test_codex_default_web_search_is_dropped_and_reported() -> None:
    request = translate(
        {"input": "x", "tools": [LOOKUP, {"type": "web_search", "external_web_access": False}]}
    )
    assert [t["function"]["name"] for t in request.chat["tools"]] == ["lookup"]
    assert request.ignored == ("tools.web_search",)


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "web_search_preview"},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"},
        {"type": "computer"},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "x", "server_url": "https://x"},
        {"type": "local_shell"},
        {"type": "shell"},
        {"type": "apply_patch"},
        {"type": "custom", "name": "apply_patch"},
        {"type": "tool_search"},
    ],
)
def test_hosted_tools_are_refused_by_name(tool: dict[str, Any]) -> None:
    error = refused({"input": "x", "tools": [LOOKUP, tool]})
    assert (error.param, error.code) == ("tools[1].type", "unsupported_value")
    assert f"'{tool['type']}'" in error.message


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "function", "name": "bad name"}], "tools[0].name"),
        ([{"type": "function"}], "tools[0].name"),
        ([LOOKUP, LOOKUP], "tools[1].name"),
        ([{"type": "function", "name": "a", "parameters": "x"}], "tools[0].parameters"),
        ([{"type": "function", "name": "a", "strict": "yes"}], "tools[0].strict"),
        ([{"name": "a"}], "tools[0].type"),
        ([{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}], "tools[0].tools[0].type"),
        (
            [{"type": "namespace", "name": "n" * 40, "tools": [{"type": "function", "name": "f" * 30}]}],
            "tools[0].tools[0].name",
        ),
        ({"type": "function"}, "tools"),
    ],
)
def test_bad_tools_are_refused_with_their_path(tools: object, param: str) -> None:
    assert refused({"input": "x", "tools": tools}).param == param


def test_tool_choice_forms() -> None:
    named = translate(
        {"input": "x", "tools": [LOOKUP], "tool_choice": {"type": "function", "name": "lookup"}}
    )
    assert named.chat["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert named.echo["tool_choice"] == {"type": "function", "name": "lookup"}
    other = {"type": "function", "name": "other", "parameters": {"type": "object"}}
    allowed = translate(
        {
            "input": "x",
            "tools": [LOOKUP, other],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "other"}],
            },
        }
    )
    assert [t["function"]["name"] for t in allowed.chat["tools"]] == ["other"]
    assert allowed.chat["tool_choice"] == "required"
    for mode in ("auto", "none"):
        assert translate({"input": "x", "tools": [LOOKUP], "tool_choice": mode}).chat["tool_choice"] == mode
        assert "tool_choice" not in translate({"input": "x", "tool_choice": mode}).chat  # no tools: no choice


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([LOOKUP], {"type": "function", "name": "nope"}, "tool_choice.name"),
        ([LOOKUP], {"type": "function"}, "tool_choice.name"),
        ([LOOKUP], {"type": "file_search"}, "tool_choice.type"),
        ([LOOKUP], {"type": "mcp", "server_label": "x"}, "tool_choice.type"),
        ([LOOKUP], "sometimes", "tool_choice"),
        ([], "required", "tool_choice"),
        ([LOOKUP], {"type": "allowed_tools", "mode": "any", "tools": []}, "tool_choice.mode"),
        (
            [LOOKUP],
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "x"}]},
            "tool_choice.tools[0].name",
        ),
        (
            [LOOKUP],
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "web_search"}]},
            "tool_choice.tools[0].type",
        ),
    ],
)
def test_bad_tool_choice_is_refused(tools: list[Any], choice: object, param: str) -> None:
    body: dict[str, Any] = {"input": "x", "tool_choice": choice}
    if tools:
        body["tools"] = tools
    assert refused(body).param == param


# Sampling, output, reasoning, text format, metadata.


def test_sampling_output_and_reasoning_fields() -> None:
    request = translate(
        {
            "input": "x",
            "max_output_tokens": 300,
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "high", "summary": "auto"},
            "metadata": {"team": "search"},
            "user": "u-1",
        }
    )
    chat = request.chat
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"]) == (300, 0.2, 0.9)
    assert chat["reasoning_effort"] == "high"
    assert chat["metadata"] == {"team": "search"} and chat["user"] == "u-1"
    assert request.ignored == ("reasoning.summary",)
    assert request.echo["reasoning"] == {"effort": "high", "summary": "auto"}


def test_text_formats() -> None:
    assert "response_format" not in translate({"input": "x", "text": {"format": {"type": "text"}}}).chat
    assert translate({"input": "x", "text": {"format": {"type": "json_object"}}}).chat["response_format"] == {
        "type": "json_object"
    }
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = translate(
        {
            "input": "x",
            "text": {
                "verbosity": "low",
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "schema": schema,
                    "strict": True,
                    "description": "The answer.",
                },
            },
        }
    )
    assert request.chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True, "description": "The answer."},
    }
    assert request.ignored == ("text.verbosity",)


def test_stream_asks_for_usage_and_store_is_kept() -> None:
    request = translate({"input": "x", "stream": True, "store": False})
    assert request.chat["stream"] is True and request.chat["stream_options"] == {"include_usage": True}
    assert request.stream is True and request.store is False


def test_safety_identifier_names_the_user_when_user_is_absent() -> None:
    alone = translate({"input": "x", "safety_identifier": "hash-1"})
    assert alone.chat["user"] == "hash-1" and alone.ignored == ()
    both = translate({"input": "x", "safety_identifier": "hash-1", "user": "u-1"})
    assert both.chat["user"] == "u-1" and both.ignored == ("safety_identifier",)


def test_routing_extensions_pass_through() -> None:
    request = translate({"input": "x", "provider": {"sort": "price"}, "models": ["zai-org/GLM-5.2"]})
    assert request.chat["provider"] == {"sort": "price"} and request.chat["models"] == ["zai-org/GLM-5.2"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"reasoning": {"summary": "long"}}, "reasoning.summary"),
        ({"reasoning": {"budget": 5}}, "reasoning.budget"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"text": {"format": {"type": "json_schema", "name": "a"}}}, "text.format.schema"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"text": {"verbosity": "loud"}}, "text.verbosity"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"user": 5}, "user"),
        ({"stream": "yes"}, "stream"),
        ({"store": 1}, "store"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"instructions": ["a"]}, "instructions"),
        ({"model": ""}, "model"),
        ({"model": None}, "model"),
        ({"previous_response_id": ""}, "previous_response_id"),
        ({"include": "reasoning.encrypted_content"}, "include"),
    ],
)
def test_bad_fields_are_refused_with_their_param(body: dict[str, Any], param: str) -> None:
    assert refused({"input": "x", **body}).param == param


# Fields accepted without effect, and fields refused.

IGNORED_VALUES: dict[str, object] = {
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "thread-1",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit"},
    "service_tier": "flex",
    "truncation": "auto",
    "client_metadata": {"x-codex-installation-id": "abc"},
    "safety_identifier": "hash-1",  # ignored only beside a user
    "stream_options": {"include_obfuscation": False},
    "top_logprobs": 3,
    "max_tool_calls": 4,
    "context_management": [{"type": "compaction"}],
    "image": {"context_compression": "auto"},
    "access_programs": {"cyber": "standard"},
    "background_options": {"completion_window": "soonest"},
}
IGNORED_NESTED: dict[str, dict[str, Any]] = {
    "reasoning.summary": {"reasoning": {"summary": "concise"}},
    "reasoning.generate_summary": {"reasoning": {"generate_summary": "auto"}},
    "reasoning.context": {"reasoning": {"context": "all_turns"}},
    "reasoning.mode": {"reasoning": {"mode": "pro"}},
    "text.verbosity": {"text": {"verbosity": "high"}},
    "tools.web_search": {"tools": [{"type": "web_search"}]},
}


def test_every_ignored_field_has_a_case_here() -> None:
    assert set(IGNORED_FIELDS) == set(IGNORED_VALUES) | set(IGNORED_NESTED)
    assert all(reason.endswith(".") and len(reason) > 30 for reason in IGNORED_FIELDS.values())


@pytest.mark.parametrize("field", sorted(IGNORED_VALUES))
def test_ignored_top_level_fields_leave_the_chat_request_alone(field: str) -> None:
    base = {"input": "x", "user": "u-1"}
    request = translate({**base, field: IGNORED_VALUES[field]})
    assert request.ignored == (field,)
    assert request.chat == translate(base).chat


@pytest.mark.parametrize("field", sorted(IGNORED_NESTED))
def test_ignored_nested_fields_are_reported(field: str) -> None:
    request = translate({"input": "x", **IGNORED_NESTED[field]})
    assert field in request.ignored
    assert "tools" not in request.chat and "response_format" not in request.chat


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"background": True}, "background"),
    ],
)
def test_features_that_cannot_be_kept_are_refused(body: dict[str, Any], param: str) -> None:
    error = refused({"input": "x", **body})
    assert (error.param, error.code) == (param, "unsupported_value")


def test_background_false_and_nulls_are_accepted() -> None:
    request = translate({"input": "x", "background": False, "temperature": None, "tools": None, "user": None})
    assert request.chat == {"model": "moonshotai/Kimi-K2.6", "messages": [{"role": "user", "content": "x"}]}


def test_unknown_fields_and_bodies_are_refused() -> None:
    error = refused({"input": "x", "max_tokens": 5})
    assert (error.param, error.code) == ("max_tokens", "unknown_parameter")
    with pytest.raises(GatewayError) as caught:
        responses_to_chat(["not", "an", "object"], history=None)
    assert caught.value.code == "invalid_type"
    with pytest.raises(GatewayError) as caught:
        responses_to_chat({"input": "x"}, history=None)
    assert caught.value.param == "model"


# Any well-formed request becomes a chat request the gateway's validator accepts.

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_names = st.sampled_from(["lookup", "search", "get_weather"])


@st.composite
def _turns(draw: st.DrawFn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [user(draw(_text))]
    for n in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["user", "system", "developer", "assistant", "calls", "reasoning"]))
        if kind in ("user", "system", "developer"):
            content: object = (
                draw(_text)
                if draw(st.booleans())
                else [
                    {"type": "input_text", "text": t} for t in draw(st.lists(_text, min_size=1, max_size=3))
                ]
            )
            items.append({"type": "message", "role": kind, "content": content})
        elif kind == "assistant":
            items.append(
                {
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": draw(_text), "annotations": []}],
                }
            )
        elif kind == "reasoning":
            items.append(
                {
                    "type": "reasoning",
                    "id": f"rs_{n}",
                    "summary": [{"type": "summary_text", "text": draw(_text)}],
                }
            )
        else:
            calls = [call(f"c{n}_{k}", draw(_names), draw(_text)) for k in range(draw(st.integers(1, 3)))]
            items += calls
            items += [output(c["call_id"], draw(_text)) for c in calls]
    return items


@settings(max_examples=150, deadline=None)
@given(
    items=_turns(),
    instructions=st.none() | _text,
    stream=st.booleans(),
    choice=st.sampled_from([None, "auto", "none", "required", {"type": "function", "name": "search"}]),
    effort=st.none() | st.sampled_from(["low", "medium", "high"]),
    max_output=st.none() | st.integers(1, 262_144),
)
def test_translations_pass_the_chat_validator(
    items: list[dict[str, Any]],
    instructions: str | None,
    stream: bool,
    choice: object,
    effort: str | None,
    max_output: int | None,
) -> None:
    tools = [
        {"type": "function", "name": n, "parameters": {"type": "object"}}
        for n in ("lookup", "search", "get_weather")
    ]
    body: dict[str, Any] = {
        "model": "m",
        "input": items,
        "tools": tools,
        "stream": stream,
        "instructions": instructions,
        "tool_choice": choice,
        "max_output_tokens": max_output,
    }
    if effort:
        body["reasoning"] = {"effort": effort}
    request = responses_to_chat(body, history=None)
    view = validate_chat_request(request.chat)
    assert view.stream is stream and view.include_usage is stream
    assert view.max_output_tokens == max_output and view.reasoning_effort == effort
    roles = [m["role"] for m in request.chat["messages"]]
    assert roles.count("tool") == sum(1 for i in items if i.get("type") == "function_call_output")
    assert len(request.input_items) == len(items)
