"""Searched properties of the request translation over generated valid conversations."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.inbound.support import body, chat_view, translate

NAMES = ["Read", "Bash", "mcp__github__search_repositories_by_topic_and_language_with_pagination"]
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
inputs = st.dictionaries(
    st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=4), st.booleans()), max_size=3
)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    """A valid conversation: tool calls answered in the next user turn, in any order, among other blocks."""
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    serial = 0
    for _ in range(draw(st.integers(1, 4))):
        blocks: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": call_id, "content": draw(words)} for call_id in pending
        ]
        blocks += [
            {"type": "text", "text": draw(words)} for _ in range(draw(st.integers(0 if pending else 1, 2)))
        ]
        if draw(st.booleans()):
            blocks.append({"type": "image", "source": {"type": "url", "url": "https://example.com/i.png"}})
        messages.append({"role": "user", "content": draw(st.permutations(blocks))})
        if draw(st.booleans()):
            messages.append({"role": "system", "content": draw(words) or "note"})
        reply: list[dict[str, Any]] = []
        if draw(st.booleans()):
            reply.append({"type": "thinking", "thinking": draw(words), "signature": ""})
        if draw(st.booleans()):
            reply.append({"type": "text", "text": draw(words)})
        pending = []
        for _ in range(draw(st.integers(0, 2))):
            serial += 1
            pending.append(f"toolu_{serial}")
            reply.append(
                {
                    "type": "tool_use",
                    "id": pending[-1],
                    "name": draw(st.sampled_from(NAMES)),
                    "input": draw(inputs),
                }
            )
        messages.append({"role": "assistant", "content": reply or "ok"})
    final = [{"type": "tool_result", "tool_use_id": call_id} for call_id in pending]
    messages.append({"role": "user", "content": [*final, {"type": "text", "text": "go on"}]})
    tools = [{"name": name, "input_schema": {"type": "object"}} for name in NAMES]
    return body(messages=messages, tools=tools, system=draw(words))


def _user_texts_and_results(payload: dict[str, Any]) -> tuple[list[str], list[str]]:
    texts, results = [], []
    for message in payload["messages"]:
        if message["role"] != "user":
            continue
        for block in message["content"]:
            if block["type"] == "text":
                texts.append(block["text"])
            elif block["type"] == "tool_result":
                results.append(block["tool_use_id"])
    return texts, results


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_valid_conversations_translate_to_valid_chat_bodies_with_tool_results_in_place(
    payload: dict[str, Any],
) -> None:
    request = translate(payload)
    view = chat_view(request)
    chat = request.chat["messages"]
    assert view.message_count == len(chat)

    # Every tool message answers a call of the closest assistant message before it, with only
    # other tool messages in between.
    for position, message in enumerate(chat):
        if message["role"] != "tool":
            continue
        before = position - 1
        while chat[before]["role"] == "tool":
            before -= 1
        caller = chat[before]
        assert caller["role"] == "assistant"
        assert message["tool_call_id"] in {call["id"] for call in caller["tool_calls"]}

    # No user text or tool result is lost or reordered.
    texts, results = _user_texts_and_results(payload)
    chat_texts = [
        part["text"]
        for message in chat
        if message["role"] == "user"
        for part in (
            message["content"]
            if isinstance(message["content"], list)
            else [{"type": "text", "text": message["content"]}]
        )
        if part["type"] == "text"
    ]
    assert chat_texts == texts
    assert sorted(m["tool_call_id"] for m in chat if m["role"] == "tool") == sorted(results)

    # Tool names the chat side cannot carry are aliased consistently, and undone by the request.
    declared = {tool["function"]["name"] for tool in request.chat["tools"]}
    for message in chat:
        for call in message.get("tool_calls", []):
            assert call["function"]["name"] in declared
            assert request.client_tool_name(call["function"]["name"]) in NAMES
