"""The official openai SDK's Responses API and the OpenAI Agents SDK against /v1/responses: create,
stream, stored conversations, retrieve and delete, an agent with a function tool, each checked
against what the ledger holds."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import openai
import pytest

from tests.support import acreate_tenant_with_key, wait_for_rows

ROWS = "SELECT * FROM usage_events WHERE request_id = $1 ORDER BY attempt"
MODEL = "openai/gpt-oss-120b"


@pytest.fixture
async def tenant(database_url):
    return await acreate_tenant_with_key(database_url, markup="0.1")


@pytest.fixture
def client(gateway, tenant):
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0, timeout=30)
    yield c
    c.close()


def _rows(database_url: str, request_id: str, expected: int = 1) -> list:
    return asyncio.run(wait_for_rows(database_url, ROWS, expected, request_id))


def test_create_answers_and_bills(client, database_url):
    raw = client.responses.with_raw_response.create(model=MODEL, input="Say hello.", store=False)
    response = raw.parse()
    assert response.status == "completed" and response.output_text
    assert response.model == raw.headers["x-switchyard-model"]
    rows = _rows(database_url, raw.headers["x-request-id"])
    assert len(rows) == 1 and rows[0]["api"] == "responses" and rows[0]["status"] == "ok"
    assert rows[0]["billed_usd"] == Decimal(repr(response.usage.model_extra["cost"]))
    assert response.usage.output_tokens == rows[0]["completion_tokens"]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)  # store: false keeps nothing


def test_stream_and_stored_conversation(client, gateway, standins, tenant, database_url):
    with client.responses.stream(model=MODEL, input="Tell me a story.", instructions="Be brief.") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert final.output_text
    stored = client.responses.retrieve(final.id)
    assert stored.id == final.id and stored.output_text == final.output_text
    follow = client.responses.create(model=MODEL, input="And then?", previous_response_id=final.id)
    assert follow.previous_response_id == final.id and follow.output_text
    # The continuation carried the conversation: the upstream saw the first turn's answer.
    log = httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"]
    sent = [r["body"] for r in log if r["path"].endswith("/chat/completions")][-1]
    assert any(m["role"] == "assistant" and final.output_text in (m.get("content") or "") for m in sent["messages"])
    assert sent["messages"][-1] == {"role": "user", "content": "And then?"}
    other = asyncio.run(acreate_tenant_with_key(database_url))
    stranger = openai.OpenAI(base_url=gateway.url + "/v1", api_key=other.key, max_retries=0)
    try:
        with pytest.raises(openai.NotFoundError):
            stranger.responses.retrieve(final.id)
        with pytest.raises(openai.BadRequestError) as caught:
            stranger.responses.create(model=MODEL, input="x", previous_response_id=final.id)
        assert caught.value.code == "previous_response_not_found"
        with pytest.raises(openai.NotFoundError):
            stranger.responses.delete(final.id)
    finally:
        stranger.close()
    client.responses.delete(final.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final.id)


def test_function_calls_round_trip(client):
    tools = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    first = client.responses.create(model=MODEL, input="Weather in Paris?", tools=tools, tool_choice="required")
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, tools=tools,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny"}])
    assert second.status == "completed" and second.output_text


def test_agents_sdk_runs_an_agent_with_a_function_tool(gateway, tenant, database_url):
    from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    seen: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"Sunny in {city}"

    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0)
        try:
            agent = Agent(name="weather", instructions="Use the tool, then answer.", tools=[get_weather],
                          model=OpenAIResponsesModel(model=MODEL, openai_client=client),
                          model_settings=ModelSettings(tool_choice="required"))
            result = await Runner.run(agent, "What's the weather in Paris?")
            return str(result.final_output)
        finally:
            await client.close()

    answer = asyncio.run(run())
    assert seen and answer
    rows = asyncio.run(wait_for_rows(database_url, "SELECT * FROM usage_events WHERE tenant_id = $1", 2,
                                     tenant.tenant_id))
    assert len(rows) >= 2 and {r["api"] for r in rows} == {"responses"}
    assert all(r["status"] == "ok" for r in rows)
