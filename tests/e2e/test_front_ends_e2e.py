"""Every front end through the official openai client: the answer is the same whichever served it."""

from __future__ import annotations

import json

import pytest

MODEL = "openai/gpt-oss-120b"
FRONT_ENDS = ("baseten", "xpay", "orthogonal")
HELLO = [{"role": "user", "content": "Give me one short sentence about trains."}]
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look a word up",
                                         "parameters": {"type": "object", "properties": {"word": {"type": "string"}},
                                                        "required": ["word"]}}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}}, "required": ["ok", "n"]}}}


def pinned(front_end: str) -> dict:
    return {"provider": {"only": [front_end]}}


def complete(client, front_end: str, **kw):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, extra_body=pinned(front_end), **kw)
    assert raw.headers["x-switchyard-route"] == f"{front_end}:{MODEL}"
    return raw.parse(), raw.headers


def stream(client, front_end: str, **kw):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, stream=True, stream_options={"include_usage": True}, extra_body=pinned(front_end), **kw)
    assert raw.headers["x-switchyard-route"] == f"{front_end}:{MODEL}"
    content, calls, finish, usage, roles = "", {}, None, None, set()
    for chunk in raw.parse():
        if chunk.choices:
            delta = chunk.choices[0].delta
            roles.add(delta.role)
            content += delta.content or ""
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": None, "arguments": ""})
                entry["name"] = entry["name"] or call.function.name
                entry["arguments"] += call.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "assistant" in roles
    return content, list(calls.values()), finish, usage


def test_same_answer_on_every_front_end(client):
    answers = {fe: complete(client, fe, messages=HELLO) for fe in FRONT_ENDS}
    contents = {fe: a.choices[0].message.content for fe, (a, _) in answers.items()}
    assert len(set(contents.values())) == 1 and contents["baseten"]
    usages = {fe: (a.usage.prompt_tokens, a.usage.completion_tokens) for fe, (a, _) in answers.items()}
    assert len(set(usages.values())) == 1
    assert answers["xpay"][0].usage.model_extra["cost"] == pytest.approx(0.01)  # the receipt's flat fee
    assert float(answers["orthogonal"][1]["x-switchyard-cost-usd"]) > 0  # the envelope's price


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_stream_matches_the_whole_answer(client, front_end):
    whole, _ = complete(client, front_end, messages=HELLO)
    content, _, finish, usage = stream(client, front_end, messages=HELLO)
    assert content == whole.choices[0].message.content
    assert finish == "stop"
    assert usage.completion_tokens == whole.usage.completion_tokens and usage.model_extra["cost"] > 0


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_tool_calls_stream_and_not(client, front_end):
    whole, _ = complete(client, front_end, messages=HELLO, tools=[TOOL], tool_choice="required")
    call = whole.choices[0].message.tool_calls[0]
    assert whole.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup"
    _, calls, finish, _ = stream(client, front_end, messages=HELLO, tools=[TOOL], tool_choice="required")
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("lookup", json.loads(call.function.arguments))]


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_json_schema(client, front_end):
    whole, _ = complete(client, front_end, messages=HELLO, response_format=SCHEMA)
    data = json.loads(whole.choices[0].message.content)
    assert isinstance(data["ok"], bool) and isinstance(data["n"], int)
    content, _, _, _ = stream(client, front_end, messages=HELLO, response_format=SCHEMA)
    assert json.loads(content) == data


def test_orthogonal_refuses_more_than_four_stop_sequences_before_calling(client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=HELLO, stop=["a", "b", "c", "d", "e"],
                                       extra_body=pinned("orthogonal"))
    assert info.value.body["param"] == "stop"


def test_a_quoted_call_teaches_its_route_the_tokens_it_was_charged_for(client, gateway):
    from service.gateway.observers import QuoteObserver
    from service.routing.quotes import QuoteAccuracy

    class Spy(QuoteAccuracy):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple] = []

        def observe(self, route, quoted, charged, *, prompt_tokens=0, completion_tokens=0):
            self.seen.append((route, charged, prompt_tokens, completion_tokens))
            super().observe(route, quoted, charged, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    observer = next(o for o in gateway.runtime.attempts.observers if isinstance(o, QuoteObserver))
    real, observer.accuracy = observer.accuracy, Spy()
    try:
        answer, headers = complete(client, "orthogonal", messages=HELLO)
        seen = observer.accuracy.seen
    finally:
        observer.accuracy = real
    # The dry run's quote, then the call: what the marketplace charged, for the usage the client was shown.
    assert [(route, prompt, completion) for route, _, prompt, completion in seen] == [
        (f"orthogonal:{MODEL}", answer.usage.prompt_tokens, answer.usage.completion_tokens)]
    assert seen[0][1] > 0 and float(headers["x-switchyard-cost-usd"]) > 0
