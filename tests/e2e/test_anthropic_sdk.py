"""The official anthropic SDK against /v1/messages: create, stream, a tool round trip, thinking,
count_tokens and errors, each checked against what the ledger holds."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import anthropic
import pytest

from tests.support import acreate_tenant_with_key, fetch, wait_for_rows

ROWS = "SELECT * FROM usage_events WHERE request_id = $1 ORDER BY attempt"
TOOLS = [{"name": "get_weather", "description": "The weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
PINNED = {"provider": {"only": ["baseten"]}}


@pytest.fixture
async def tenant(database_url):
    return await acreate_tenant_with_key(database_url, markup="0.2")


@pytest.fixture
def sdk(gateway, tenant):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=tenant.key, max_retries=0, timeout=30)
    yield client
    client.close()


def _rows(database_url: str, request_id: str, expected: int = 1) -> list:
    return asyncio.run(wait_for_rows(database_url, ROWS, expected, request_id))


def _cost(usage: object) -> Decimal:
    return Decimal(repr(getattr(usage, "cost", None) or usage.model_extra["cost"]))  # type: ignore[attr-defined]


def test_create_with_a_claude_name_is_served_by_an_open_model_and_billed(sdk, database_url):
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-5-5", max_tokens=256, messages=[{"role": "user", "content": "Say hello."}])
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content and message.content[-1].type == "text" and message.content[-1].text
    assert message.stop_reason == "end_turn"
    served = raw.headers["x-switchyard-model"]
    assert message.model == served and not served.startswith("claude")
    rows = _rows(database_url, raw.headers["x-request-id"])
    assert len(rows) == 1 and rows[0]["api"] == "messages" and rows[0]["status"] == "ok"
    assert rows[0]["requested_model"] == "claude-sonnet-5-5" and rows[0]["served_model"] == served
    assert rows[0]["billed_usd"] == _cost(message.usage) == Decimal(raw.headers["x-switchyard-cost-usd"])
    assert message.usage.output_tokens == rows[0]["completion_tokens"]


def test_stream_accumulates_to_the_same_answer_and_is_billed(sdk, database_url):
    with sdk.messages.stream(model="moonshotai/Kimi-K2.5", max_tokens=300,
                             messages=[{"role": "user", "content": "Tell me a story."}],
                             extra_body=PINNED) as stream:
        events = list(stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text and final.content[-1].text == text
    assert final.stop_reason in ("end_turn", "max_tokens")
    rows = _rows(database_url, request_id)
    assert len(rows) == 1 and rows[0]["stream"] and rows[0]["api"] == "messages"
    # The billed cost rides on message_delta's usage (the SDK's accumulator keeps only token counts).
    delta = next(e for e in events if e.type == "message_delta")
    assert rows[0]["billed_usd"] == _cost(delta.usage)
    assert final.usage.output_tokens == rows[0]["completion_tokens"]


def test_tool_use_round_trip(sdk, database_url):
    ask = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = sdk.messages.create(model="zai-org/GLM-4.7", max_tokens=400, tools=TOOLS,
                                tool_choice={"type": "tool", "name": "get_weather"}, messages=ask)
    calls = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and calls and calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict) and "city" in calls[0].input
    history = [*ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id,
                                             "content": "Sunny, 21 C"}]}]
    with sdk.messages.stream(model="zai-org/GLM-4.7", max_tokens=400, tools=TOOLS, messages=history) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.content[-1].type == "text"


def test_streamed_tool_calls_arrive_as_input_json(sdk):
    with sdk.messages.stream(model="zai-org/GLM-4.7", max_tokens=400, tools=TOOLS,
                             tool_choice={"type": "any"},
                             messages=[{"role": "user", "content": "Weather in Oslo?"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and "content_block_start" in kinds and kinds[-1] == "message_stop"
    assert final.stop_reason == "tool_use"
    assert [b.name for b in final.content if b.type == "tool_use"] == ["get_weather"]


def test_thinking_comes_back_as_thinking_blocks(sdk):
    message = sdk.messages.create(model="zai-org/GLM-4.7", max_tokens=2000,
                                  thinking={"type": "enabled", "budget_tokens": 1024},
                                  messages=[{"role": "user", "content": "Why is the sky blue?"}])
    kinds = [b.type for b in message.content]
    assert kinds[0] == "thinking" and message.content[0].thinking
    assert kinds[-1] == "text"


def test_count_tokens_answers_from_the_estimator(sdk):
    short = sdk.messages.count_tokens(model="claude-sonnet-5-5",
                                      messages=[{"role": "user", "content": "Hi"}])
    long = sdk.messages.count_tokens(model="claude-sonnet-5-5",
                                     messages=[{"role": "user", "content": "Hello there. " * 500}])
    assert 0 < short.input_tokens < long.input_tokens


def test_errors_map_to_the_sdks_exception_classes(gateway, sdk, tenant, database_url):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.url, api_key="sk-sy-" + "x" * 40, max_retries=0).messages.create(
            model="claude-sonnet-5-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.create(model="no-such/model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(model="claude-sonnet-5-5", max_tokens=10,
                            messages=[{"role": "user", "content": [{"type": "document", "source": {
                                "type": "text", "media_type": "text/plain", "data": "x"}}]}])
    assert bad.value.body["type"] == "error" and bad.value.body["error"]["type"] == "invalid_request_error"
    asyncio.run(fetch(database_url, "INSERT INTO budgets (id, tenant_id, period, limit_usd, hard) "
                      "VALUES ($1, $2, 'day', 0, true)", uuid.uuid4(), tenant.tenant_id))
    asyncio.run(fetch(database_url, "SELECT pg_notify('switchyard_auth', $1)", f"tenant:{tenant.tenant_id}"))

    def ask_until_refused() -> None:
        for _ in range(20):  # until the notification has evicted the cached key
            sdk.messages.create(model="claude-sonnet-5-5", max_tokens=10,
                                messages=[{"role": "user", "content": "x"}])

    with pytest.raises(anthropic.APIStatusError) as spent:
        ask_until_refused()
    assert spent.value.status_code == 402 and spent.value.response.headers["x-should-retry"] == "false"


def test_aliases_are_listed_and_retrieved(gateway, tenant):
    import openai

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=0)
    try:
        listing = client.models.with_raw_response.list().parse()
        aliases = listing.model_extra["aliases"]
        assert {"match": "claude-*", "to": "coding"} in aliases
        claude = client.models.retrieve("claude-sonnet-5-5")
        assert claude.id == "claude-sonnet-5-5" and claude.model_extra["alias_of"] == "coding"
        assert claude.model_extra["models"]  # the pool's members
    finally:
        client.close()
