"""Chat Completions answers as Responses API Response objects.

The output items and the Response envelope are built here for both paths, whole answers
(`chat_to_response`) and streams (`responses_stream`), so a stream's final `response.completed`
is exactly what the same answer unstreamed would have been. Item ids derive from the response id
and the item's position, so both paths name items alike.

Item order is reasoning, message, function calls. A message is given when the answer has text, or
when it has neither tool calls nor reasoning (an empty answer is an empty message, so clients
reading `output_text` get ""). When the answer was cut (`finish_reason` length or
content_filter) the Response is `incomplete` and its last message or function call has status
`incomplete`: that is the item the cut fell in.
"""

from __future__ import annotations

import secrets
from typing import Any

from service.inbound.responses_request import ResponsesRequest

Item = dict[str, Any]

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def item_id(response_id: str, prefix: str, index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def reasoning_item(response_id: str, index: int, text: str) -> Item:
    return {
        "id": item_id(response_id, "rs", index),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}],
    }


def text_part(text: str) -> Item:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(response_id: str, index: int, text: str, status: str) -> Item:
    return {
        "id": item_id(response_id, "msg", index),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [text_part(text)],
    }


def function_call_item(
    request: ResponsesRequest,
    response_id: str,
    index: int,
    call_id: str,
    name: str,
    arguments: str,
    status: str,
) -> Item:
    item: Item = {
        "id": item_id(response_id, "fc", index),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }
    # A namespaced tool was flattened for the upstream; the client knows it by namespace and name.
    namespaced = request.tool_namespaces.get(name)
    if namespaced is not None:
        item["namespace"], item["name"] = namespaced
    return item


def responses_usage(usage: object) -> Item | None:
    """Chat usage as Responses usage, the gateway's `cost` kept."""
    if not isinstance(usage, dict):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = _count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    reasoning = (
        _count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else 0
    )
    total = usage.get("total_tokens")
    out: Item = {
        "input_tokens": prompt,
        # The current schema requires cache_write_tokens; Baseten reports no cache writes.
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total if type(total) is int else prompt + completion,
    }
    if "cost" in usage:
        out["cost"] = usage["cost"]
    return out


def _count(value: object) -> int:
    return value if type(value) is int else 0


def response_envelope(
    request: ResponsesRequest,
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[Item],
    usage: Item | None,
    finish_reason: str | None = None,
    error: Item | None = None,
) -> Item:
    """A Response object: status, output and usage, and the request fields OpenAI repeats."""
    incomplete = INCOMPLETE_REASONS.get(finish_reason or "") if status == "incomplete" else None
    echo = request.echo
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": echo["instructions"],
        "max_output_tokens": echo["max_output_tokens"],
        "model": model,
        "output": output,
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": echo["previous_response_id"],
        "reasoning": echo["reasoning"],
        "store": echo["store"],
        "temperature": echo["temperature"],
        "text": echo["text"],
        "tool_choice": echo["tool_choice"],
        "tools": echo["tools"],
        "top_p": echo["top_p"],
        "usage": usage,
        "user": echo["user"],
        "metadata": echo["metadata"],
    }


def final_status(finish_reason: str | None) -> str:
    return "incomplete" if finish_reason in INCOMPLETE_REASONS else "completed"


def chat_to_response(
    completion: dict[str, Any], *, request: ResponsesRequest, response_id: str, created_at: int
) -> dict[str, Any]:
    """The Response object for a whole Chat Completions answer."""
    choices = completion.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    finish_reason = choice.get("finish_reason")
    status = final_status(finish_reason)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    content = message.get("content")
    tool_calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]

    output: list[Item] = []
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(response_id, len(output), reasoning))
    if (isinstance(content, str) and content) or (not tool_calls and not output):
        output.append(
            message_item(response_id, len(output), content if isinstance(content, str) else "", "completed")
        )
    for call in tool_calls:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                request,
                response_id,
                len(output),
                str(call.get("id") or item_id(response_id, "call", len(output))),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
                "completed",
            )
        )
    mark_cut(output, status)
    return response_envelope(
        request,
        response_id=response_id,
        created_at=created_at,
        model=str(completion.get("model") or request.model),
        status=status,
        output=output,
        usage=responses_usage(completion.get("usage")),
        finish_reason=finish_reason,
    )


def mark_cut(output: list[Item], status: str) -> None:
    """On an incomplete answer, the last message or call is the one the cut fell in."""
    if status == "incomplete" and output and "status" in output[-1]:
        output[-1]["status"] = "incomplete"


def conversation_items(request: ResponsesRequest, response: dict[str, Any]) -> list[dict[str, Any]]:
    """What storage keeps for `previous_response_id`: the history, this input, this output."""
    return [*request.history, *request.input_items, *response.get("output", [])]
