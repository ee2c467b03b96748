"""The openai client's model calls, and today's request parameters, against a live gateway."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support import create_tenant_with_key

MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Say hello."}]
# Only a Baseten route, with no published price: no gateway can serve it.
UNSERVABLE = "Qwen/Qwen3-235B-A22B-Instruct-2507"
PINNED = {"provider": {"only": ["baseten"]}}


def test_retrieve_a_model_whose_id_has_a_slash(client):
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.object == "model"
    assert model.model_extra["kind"] == "model"
    assert any(r["front_end"] == "baseten" for r in model.model_extra["routes"])


def test_retrieve_a_pool_and_auto(client):
    pool = client.models.retrieve("budget")
    assert pool.model_extra["kind"] == "pool" and MODEL in pool.model_extra["models"]
    auto = client.models.retrieve("auto")
    assert auto.model_extra["kind"] == "auto" and MODEL in auto.model_extra["models"]


def test_the_list_offers_pools_and_only_servable_models(client):
    listed = {m.id: m.model_extra for m in client.models.list().data}
    assert {"frontier", "budget", "auto"} <= set(listed)
    assert listed["frontier"]["models"] and all(m in listed for m in listed["frontier"]["models"])
    assert UNSERVABLE not in listed
    assert all(m["kind"] in ("model", "pool", "auto") for m in listed.values())


def test_unknown_and_unservable_models_are_404_without_retries(gateway, tenant):
    calls = []

    def count(request: httpx.Request) -> None:
        calls.append(request.url.path)

    http = httpx.Client(event_hooks={"request": [count]})
    # max_retries=2: a retryable answer would be asked three times.
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=tenant.key, max_retries=2, http_client=http) as c:
        for model in ("no/such-model", UNSERVABLE):
            calls.clear()
            with pytest.raises(openai.NotFoundError) as info:
                c.models.retrieve(model)
            assert info.value.response.headers["x-should-retry"] == "false"
            assert len(calls) == 1
        calls.clear()
        with pytest.raises(openai.NotFoundError) as info:
            c.chat.completions.create(model=UNSERVABLE, messages=HELLO)
        assert info.value.body["code"] == "model_not_servable"
        assert info.value.response.headers["x-should-retry"] == "false"
        assert len(calls) == 1


def test_a_tenant_limited_to_one_model_is_offered_it_and_its_pools(gateway, database_url):
    limited = create_tenant_with_key(database_url, allowed_models=[MODEL])
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=limited.key, max_retries=0) as c:
        listed = {m.id: m.model_extra for m in c.models.list().data}
        assert set(listed) == {MODEL, "budget", "auto"}
        assert listed["budget"]["models"] == [MODEL]
        with pytest.raises(openai.NotFoundError):
            c.models.retrieve("moonshotai/Kimi-K2.5")


def test_current_sdk_parameters_are_served(client):
    # Parameters today's SDK sends that no route takes are accepted and dropped, never refused.
    answer = client.chat.completions.create(
        model=MODEL, messages=HELLO, store=True, metadata={"team": "search"}, user="u-1",
        service_tier="flex", prompt_cache_key="k-1", safety_identifier="s-1", verbosity="medium",
        modalities=["text"], prediction={"type": "content", "content": "Hello"}, parallel_tool_calls=True,
        extra_body={**PINNED, "reasoning": {"effort": "low", "exclude": False}},
    )
    assert answer.choices[0].message.content


def test_current_sdk_streaming_options_are_served(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True,
        stream_options={"include_usage": True, "include_obfuscation": False}, extra_body=PINNED,
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].choices == []


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"audio": {"voice": "alloy", "format": "mp3"}, "modalities": ["text", "audio"]}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities[1]"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"verbosity": "low"}, "verbosity"),
    ],
    ids=["audio", "modalities-audio", "web-search", "verbosity-low"],
)
def test_what_no_route_can_honour_is_a_clear_400_not_retried(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=HELLO, **kwargs)
    assert info.value.body["param"] == param
    assert info.value.body["code"] in ("unsupported_parameter", "unsupported_value")
    assert info.value.response.headers["x-should-retry"] == "false"
