"""The runner (threads, ports, the module entry point) and the official openai client against the stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from service.simulator.runner import ServerThread, start_standins

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def running():
    with start_standins(api_keys={"baseten": "sk-openai-test"}) as servers:
        yield servers


def test_start_standins_exposes_urls_and_keys(running):
    assert running.baseten_url.startswith("http://127.0.0.1:") and running.baseten_url.endswith("/v1")
    assert running.api_keys["baseten"] == "sk-openai-test"
    for url, suffix in ((running.xpay_url, "/mcp"), (running.orthogonal_url, "/v1")):
        # The marketplace stand-ins come from another module; when present they follow the same rules.
        assert url is None or (url.startswith("http://127.0.0.1:") and url.endswith(suffix))
    assert httpx.get(running.baseten_url + "/models").status_code == 200


def test_openai_client_streams(running):
    client = openai.OpenAI(base_url=running.baseten_url, api_key="sk-openai-test", max_retries=0)
    stream = client.chat.completions.create(
        model="deepseek-ai/DeepSeek-V4-Pro",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    whole = client.chat.completions.create(
        model="deepseek-ai/DeepSeek-V4-Pro", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert text and text == whole.choices[0].message.content
    assert finish == "stop" and usage.completion_tokens == whole.usage.completion_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_openai_client_tool_call_and_errors(running):
    client = openai.OpenAI(base_url=running.baseten_url, api_key="sk-openai-test", max_retries=0)
    tools = [{"type": "function", "function": {"name": "square_root", "parameters": {
        "type": "object", "properties": {"number": {"type": "number"}}, "required": ["number"]}}}]
    result = client.chat.completions.create(
        model="openai/gpt-oss-120b",
        messages=[{"role": "user", "content": "sqrt 2"}],
        tools=tools,
        tool_choice="required",
    )
    call = result.choices[0].message.tool_calls[0]
    assert call.function.name == "square_root" and "number" in json.loads(call.function.arguments)
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(base_url=running.baseten_url, api_key="wrong", max_retries=0).chat.completions.create(
            model="openai/gpt-oss-120b", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="openai/gpt-oss-120b", messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Fake-Fault": "status:429"},
        )


def test_server_thread_picks_a_port_and_stops():
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    server = ServerThread(app).start()
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url).status_code == 204
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=2)


def test_module_entry_point_prints_urls_and_stops_on_sigint():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.simulator", "--host", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("baseten") and "http://127.0.0.1:" in first
        url = first.split()[1]
        assert httpx.get(url + "/models", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0


def test_small_responses_do_not_stall_on_nagle(running):
    # Without TCP_NODELAY on accepted sockets each response written in two parts waits ~40 ms
    # for a delayed ACK; twenty requests would then take ~0.8 s instead of a few milliseconds.
    with httpx.Client(base_url=running.baseten_url) as client:
        client.get("/models")
        started = time.perf_counter()
        for _ in range(20):
            assert client.get("/models").status_code == 200
        assert time.perf_counter() - started < 0.5
