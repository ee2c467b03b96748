"""The gateway's own log output: one JSON line per chat request with the fields an operator
searches by, and never a key, a token, a prompt or a completion.

The gateway runs as `switchyard serve` in a subprocess: logging is configured once per process
there, as in production, and its stdout is exactly what a log shipper would collect.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import openai
import pytest

from tests.observability.served import ServedGateway
from tests.support import create_tenant_with_key, gateway_env

MODEL = "openai/gpt-oss-120b"
PINNED = {"provider": {"only": ["baseten"]}}
HUGE_MODEL = "m" * 100_000
REQUEST_FIELDS = {"request_id", "tenant_id", "requested_model", "served_model", "route", "attempts", "status",
                  "prompt_tokens", "completion_tokens", "cost_usd", "duration_ms"}


@dataclass
class Sent:
    """What went into the gateway, and what came back, during the module's traffic."""

    tenant_id: str
    key: str
    key_prefix: str
    admin_token: str
    provider_keys: list[str]
    markers: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    wrong_key: str = ""
    # request id -> what the log line must say about it
    requests: dict[str, dict] = field(default_factory=dict)


@dataclass
class Captured:
    sent: Sent
    stdout: str
    stderr: str
    returncode: int


def _ask(client: openai.OpenAI, sent: Sent, *, stream: bool) -> None:
    marker = f"prompt-marker-{uuid.uuid4().hex}"
    sent.markers.append(marker)
    messages = [{"role": "user", "content": f"Remember {marker} and say hello."}]
    if stream:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True},
            extra_body=PINNED)
        text, usage = [], None
        for chunk in raw.parse():
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
            usage = chunk.usage or usage
        content, cost = "".join(text), None
    else:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages,
                                                               extra_body=PINNED)
        completion = raw.parse()
        content, usage = completion.choices[0].message.content, completion.usage
        cost = Decimal(raw.headers["x-switchyard-cost-usd"])
    sent.completions.append(content)
    sent.requests[raw.headers["x-request-id"]] = {
        "status": 200, "stream": stream, "served_model": MODEL, "route": f"baseten:{MODEL}", "attempts": 1,
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "cost_usd": cost,
    }


def _ask_and_fail(client: openai.OpenAI, sent: Sent, standins) -> None:
    control = standins.servers["baseten"].url + "/__control/faults"
    httpx.post(control, json={"match": {"path": "/v1/chat/completions"}, "fault": "status:503:string",
                              "times": 5}).raise_for_status()
    marker = f"prompt-marker-{uuid.uuid4().hex}"
    sent.markers.append(marker)
    try:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": marker}],
                                           extra_body=PINNED)
    finally:
        httpx.delete(control).raise_for_status()
    sent.requests[info.value.response.headers["x-request-id"]] = {
        "status": info.value.status_code, "stream": False, "served_model": None, "route": None,
        "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": Decimal(0),
    }


@pytest.fixture(scope="module")
def captured(standins, database_url, tmp_path_factory) -> Captured:
    out = tmp_path_factory.mktemp("logs")
    env = gateway_env(standins, database_url, out / "data", LOG_LEVEL="INFO", LOG_JSON="true")
    tenant = create_tenant_with_key(database_url, f"logs-{uuid.uuid4().hex[:8]}")
    sent = Sent(tenant_id=str(tenant.tenant_id), key=tenant.key, key_prefix=tenant.key_prefix,
                admin_token=env["SWITCHYARD_ADMIN_TOKEN"], provider_keys=list(standins.api_keys.values()),
                wrong_key="sk-sy-" + secrets.token_urlsafe(32))
    server = ServedGateway(env, workers=1, out_dir=out).start()
    try:
        with openai.OpenAI(base_url=server.url + "/v1", api_key=tenant.key, max_retries=0,
                           timeout=20) as client:
            _ask(client, sent, stream=False)
            _ask(client, sent, stream=True)
            _ask(client, sent, stream=False)
            _ask_and_fail(client, sent, standins)
        with (openai.OpenAI(base_url=server.url + "/v1", api_key=sent.wrong_key, max_retries=0) as wrong,
              pytest.raises(openai.AuthenticationError)):
            wrong.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        # Client-chosen strings of 100 kB each: whatever the answer, the log lines stay bounded.
        huge = httpx.post(server.url + "/v1/chat/completions", timeout=20,
                          headers={"authorization": f"Bearer {tenant.key}", "x-switchyard-tags": "t" * 4000,
                                   "user-agent": "a" * 4000, "x-request-id": "r" * 4000},
                          json={"model": HUGE_MODEL, "user": "u" * 100_000, "metadata": {"tag": "t" * 100_000},
                                "messages": [{"role": "user", "content": "hi"}]})
        assert 400 <= huge.status_code < 500, huge.text[:500]
        for path, body in (("/v1/messages", {"model": HUGE_MODEL, "max_tokens": 5,
                                             "messages": [{"role": "user", "content": "hi"}]}),
                           ("/v1/responses", {"model": HUGE_MODEL, "input": "hi", "user": "u" * 100_000}),
                           ("/v1/quote", {"model": HUGE_MODEL, "messages": [{"role": "user", "content": "hi"}]})):
            answer = httpx.post(server.url + path, json=body, timeout=20,
                                headers={"authorization": f"Bearer {tenant.key}", "x-api-key": tenant.key})
            assert 400 <= answer.status_code < 500, (path, answer.status_code)
        admin = httpx.get(server.url + "/admin/tenants",
                          headers={"authorization": f"Bearer {sent.admin_token}"})
        assert admin.status_code == 200
    finally:
        returncode = server.stop()
    return Captured(sent, server.stdout(), server.stderr(), returncode)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_server_shut_down_cleanly(captured: Captured) -> None:
    assert captured.returncode == 0, captured.stderr


def test_one_json_line_per_request_with_its_fields(captured: Captured) -> None:
    lines = _json_lines(captured.stdout)
    request_lines = [line for line in lines if line.get("event") == "request"]
    by_id: dict[str, list[dict]] = {}
    for line in request_lines:
        by_id.setdefault(line["request_id"], []).append(line)
    assert set(by_id) == set(captured.sent.requests), "a request without its line, or the reverse"
    for request_id, expected in captured.sent.requests.items():
        assert len(by_id[request_id]) == 1, by_id[request_id]
        line = by_id[request_id][0]
        assert set(line) >= REQUEST_FIELDS, REQUEST_FIELDS - set(line)
        assert line["level"] == "info"
        assert line["tenant_id"] == captured.sent.tenant_id
        assert line["key_prefix"] == captured.sent.key_prefix
        assert line["requested_model"] == MODEL
        assert line["status"] == expected["status"]
        assert line["stream"] is expected["stream"]
        assert line["served_model"] == expected["served_model"]
        assert line["route"] == expected["route"]
        assert line["attempts"] >= 1
        assert line["prompt_tokens"] == expected["prompt_tokens"]
        assert line["completion_tokens"] == expected["completion_tokens"]
        assert isinstance(line["duration_ms"], (int, float))
        assert line["duration_ms"] > 0
        if expected["cost_usd"] is not None:
            assert Decimal(line["cost_usd"]) == expected["cost_usd"]
        else:
            assert Decimal(line["cost_usd"]) > 0
        if expected["stream"]:
            assert line["ttft_ms"] is not None
            assert 0 < line["ttft_ms"] <= line["duration_ms"]
    failed = [by_id[r][0] for r, e in captured.sent.requests.items() if e["status"] != 200]
    assert failed
    assert all(line["error_code"] for line in failed)


def test_every_stdout_line_is_json(captured: Captured) -> None:
    """The server's own banner lines aside, what the app writes is one JSON object per line."""
    for line in captured.stdout.splitlines():
        if line.strip() and not line.startswith("["):
            assert isinstance(json.loads(line), dict), line


def _secret_fragments(secret: str, window: int = 8) -> list[str]:
    """Every `window`-long piece of a secret: a log that kept any part of it fails."""
    return [secret[i : i + window] for i in range(len(secret) - window + 1)]


def test_no_secret_prompt_or_completion_in_any_line(captured: Captured) -> None:
    sent = captured.sent
    output = captured.stdout + captured.stderr
    request_lines = [line for line in output.splitlines()
                     if line.startswith("{") and json.loads(line).get("event") == "request"]
    assert sent.requests
    assert len(request_lines) == len(sent.requests)

    def absent(what: str, value: str) -> None:
        assert value not in output, f"the {what} appears in the logs"

    # A tenant key may show its public prefix (that is how operators find it), nothing beyond.
    for key in (sent.key, sent.wrong_key):
        secret_part = key[len(sent.key_prefix):]
        for fragment in _secret_fragments(secret_part):
            absent("secret part of an API key", fragment)
    absent("admin token", sent.admin_token)
    for provider_key in sent.provider_keys:
        absent("provider key", provider_key)
    for marker in sent.markers:
        absent("prompt", marker)
    assert len(sent.completions) == 3
    for completion in sent.completions:
        assert len(completion) >= 20, "a completion too short to tell apart from other text"
        absent("completion", completion)


def test_client_chosen_strings_are_bounded_in_every_line(captured: Captured) -> None:
    lines = [line for line in (captured.stdout + captured.stderr).splitlines() if line.startswith("{")]
    assert all(len(line) < 8 * 1024 for line in lines), max(len(line) for line in lines)
    for needle in ("m" * 300, "u" * 300, "t" * 300, "a" * 300, "r" * 300):
        assert needle not in captured.stdout + captured.stderr
