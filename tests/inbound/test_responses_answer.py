"""Chat Completions answers as Response objects, and the conversation storage keeps."""

from __future__ import annotations

from typing import Any

from openai.types.responses import Response

from service.chat.validate import validate_chat_request
from service.inbound.responses_output import chat_to_response, conversation_items, new_response_id
from service.inbound.responses_request import ResponsesRequest, responses_to_chat
from tests.inbound.responses_support import completion

LOOKUP = {"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}


def request(**body: Any) -> ResponsesRequest:
    return responses_to_chat({"model": "moonshotai/Kimi-K2.6", "input": "Hi", **body}, history=None)


def answer(req: ResponsesRequest, chat: dict[str, Any], response_id: str = "resp_r1") -> dict[str, Any]:
    response = chat_to_response(chat, request=req, response_id=response_id, created_at=1780264605)
    Response.model_validate(response)  # the SDK's own schema accepts it
    return response


def test_text_answer_with_reasoning() -> None:
    response = answer(
        request(), completion(content="Hello!", reasoning="Greet back.", model="zai-org/GLM-5.2")
    )
    assert response["id"] == "resp_r1" and response["object"] == "response"
    assert response["created_at"] == 1780264605
    assert (
        response["status"] == "completed"
        and response["incomplete_details"] is None
        and response["error"] is None
    )
    assert response["model"] == "zai-org/GLM-5.2"  # what served it, not what was asked for
    assert response["output"] == [
        {"id": "rs_r1_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Greet back."}]},
        {
            "id": "msg_r1_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
        },
    ]
    assert response["usage"] == {
        "input_tokens": 13,
        "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 20,
        "cost": 0.00042,
    }
    assert Response.model_validate(response).output_text == "Hello!"


def test_tool_calls_keep_the_upstream_call_ids() -> None:
    req = request(tools=[LOOKUP])
    chat = completion(
        reasoning="Need data.",
        tool_calls=[("chatcmpl-tool-1", "lookup", '{"q": 1}'), ("chatcmpl-tool-2", "lookup", '{"q": 2}')],
        finish_reason="tool_calls",
    )
    response = answer(req, chat)
    assert [item["type"] for item in response["output"]] == ["reasoning", "function_call", "function_call"]
    assert response["output"][1] == {
        "id": "fc_r1_1",
        "type": "function_call",
        "status": "completed",
        "arguments": '{"q": 1}',
        "call_id": "chatcmpl-tool-1",
        "name": "lookup",
    }
    assert response["output"][2]["call_id"] == "chatcmpl-tool-2"
    assert response["status"] == "completed"


def test_namespaced_tool_calls_come_back_with_their_namespace() -> None:
    req = request(
        tools=[{"type": "namespace", "name": "agents", "description": "Agents.", "tools": [LOOKUP]}]
    )
    response = answer(
        req, completion(tool_calls=[("c1", "agents__lookup", "{}")], finish_reason="tool_calls")
    )
    call = response["output"][0]
    assert (call["namespace"], call["name"]) == ("agents", "lookup")


def test_text_and_tool_calls_keep_the_message_first() -> None:
    response = answer(
        request(tools=[LOOKUP]),
        completion(content="Let me check.", tool_calls=[("c1", "lookup", "{}")], finish_reason="tool_calls"),
    )
    assert [item["type"] for item in response["output"]] == ["message", "function_call"]


def test_cut_during_reasoning_is_incomplete_without_a_message() -> None:
    # Baseten's GenSync-MaxTokens: finish_reason length and no content key, only reasoning.
    response = answer(
        request(max_output_tokens=16), completion(reasoning="Let me think about", finish_reason="length")
    )
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [item["type"] for item in response["output"]] == ["reasoning"]
    assert response["max_output_tokens"] == 16


def test_cut_text_marks_the_last_item_incomplete() -> None:
    response = answer(
        request(), completion(content="Once upon a", reasoning="Story.", finish_reason="length")
    )
    assert response["status"] == "incomplete"
    assert response["output"][1]["status"] == "incomplete"
    calls = answer(
        request(tools=[LOOKUP]),
        completion(
            content="Checking",
            tool_calls=[("c1", "lookup", "{}"), ("c2", "lookup", '{"q"')],
            finish_reason="length",
        ),
    )
    assert [item["status"] for item in calls["output"]] == ["completed", "completed", "incomplete"]


def test_content_filter_is_incomplete_for_that_reason() -> None:
    response = answer(request(), completion(content="", finish_reason="content_filter"))
    assert response["incomplete_details"] == {"reason": "content_filter"}


def test_empty_answer_is_an_empty_message() -> None:
    response = answer(request(), completion())
    assert [item["type"] for item in response["output"]] == ["message"]
    assert Response.model_validate(response).output_text == ""
    no_usage = completion(content="x")
    del no_usage["usage"]
    assert answer(request(), no_usage)["usage"] is None


def test_request_fields_are_echoed_as_openai_does() -> None:
    req = request(
        instructions="Be brief.",
        tools=[LOOKUP],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0.3,
        top_p=0.8,
        max_output_tokens=100,
        reasoning={"effort": "low"},
        text={"format": {"type": "json_object"}, "verbosity": "low"},
        metadata={"k": "v"},
        store=False,
        user="u-1",
    )
    response = answer(req, completion(content="{}"))
    assert {k: response[k] for k in req.echo} == {
        "instructions": "Be brief.",
        "tools": [LOOKUP],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 0.3,
        "top_p": 0.8,
        "max_output_tokens": 100,
        "previous_response_id": None,
        "reasoning": {"effort": "low", "summary": None},
        "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "metadata": {"k": "v"},
        "store": False,
        "user": "u-1",
    }
    defaults = answer(request(), completion(content="x"))
    assert (defaults["tools"], defaults["tool_choice"], defaults["parallel_tool_calls"]) == ([], "auto", True)
    assert defaults["text"] == {"format": {"type": "text"}} and defaults["metadata"] == {}
    assert defaults["store"] is True and defaults["reasoning"] is None


def test_conversation_continues_with_previous_response_id() -> None:
    first_request = request(instructions="Use tools.", tools=[LOOKUP])
    first = answer(
        first_request,
        completion(
            reasoning="Look it up.",
            tool_calls=[("call-1", "lookup", '{"q": "x"}')],
            finish_reason="tool_calls",
        ),
        new_response_id(),
    )
    stored = conversation_items(first_request, first)
    assert stored == [*first_request.input_items, *first["output"]]

    second_request = responses_to_chat(
        {
            "model": "m",
            "previous_response_id": first["id"],
            "instructions": "Use tools.",
            "tools": [LOOKUP],
            "input": [{"type": "function_call_output", "call_id": "call-1", "output": "found"}],
        },
        history=stored,
    )
    validate_chat_request(second_request.chat)
    assert second_request.chat["messages"] == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "reasoning_content": "Look it up.",
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": "found"},
    ]
    second = answer(second_request, completion(content="It is x."), "resp_r2")
    assert second["previous_response_id"] == first["id"]
    # The third turn sees both earlier turns; the instructions of earlier turns are not carried.
    third = responses_to_chat(
        {"model": "m", "previous_response_id": "resp_r2", "input": "Thanks"},
        history=conversation_items(second_request, second),
    )
    assert [m["role"] for m in third.chat["messages"]] == ["user", "assistant", "tool", "assistant", "user"]
