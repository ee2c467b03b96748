"""Real clients: the requests Codex CLI and the Agents SDK sent (fixtures), and live runs of both
against a recording server that answers through the adapter.

The fixtures were captured with `python -m tests.inbound.client_capture` (Codex CLI 0.171.0,
openai-agents 0.24.0 on openai 3.54.0). The live Codex run needs the CLI from npm; it is found
through CODEX_BIN, PATH, or /work/scratch/codex, and skipped when absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from service.chat.validate import validate_chat_request
from service.inbound.responses_request import responses_to_chat
from tests.inbound.client_capture import run_agents, run_codex

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return body


def test_codex_request_is_accepted() -> None:
    body = fixture("codex_responses.json")
    request = responses_to_chat(body, history=None)
    view = validate_chat_request(request.chat)
    assert view.stream and view.include_usage and request.store is False
    assert set(request.ignored) == {
        "include",
        "prompt_cache_key",
        "client_metadata",
        "reasoning.summary",
        "tools.web_search",
    }
    names = [t["function"]["name"] for t in request.chat["tools"]]
    assert "exec_command" in names and "web_search" not in names
    # Codex's sub-agent tools come as a namespace: flattened, and mapped back for the answer.
    namespaced = [n for n in names if n.startswith("multi_agent_v1__")]
    assert namespaced and all(request.tool_namespaces[n][0] == "multi_agent_v1" for n in namespaced)
    messages = request.chat["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user", "user", "assistant", "tool"]
    assistant = messages[4]
    assert assistant["reasoning_content"] == "The user wants a greeting. I will echo it."
    assert assistant["tool_calls"][0]["function"] == {
        "name": "exec_command",
        "arguments": '{"cmd": "echo hi"}',
    }
    assert messages[5]["tool_call_id"] == "call_echo_0" and "hi" in messages[5]["content"]


def test_agents_sdk_request_is_accepted() -> None:
    body = fixture("agents_sdk_responses.json")
    request = responses_to_chat(body, history=None)
    view = validate_chat_request(request.chat)
    assert not view.stream and view.has_tools and request.store is True
    assert request.ignored == ("include",)
    assert request.chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The current weather in a city.",
                "parameters": body["tools"][0]["parameters"],
                "strict": True,
            },
        }
    ]
    messages = request.chat["messages"]
    assert messages[0] == {"role": "system", "content": "Answer weather questions with the get_weather tool."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["reasoning_content"] == "I should look the weather up."
    assert messages[3] == {"role": "tool", "tool_call_id": "call_weather_0", "content": "Sunny in Paris."}


@pytest.mark.parametrize("streamed", [False, True])
def test_agents_sdk_runs_a_tool_through_the_adapter(streamed: bool) -> None:
    pytest.importorskip("agents")
    capture = run_agents(streamed=streamed)
    assert capture.errors == []
    assert capture.output == "It is sunny in Paris."
    posts = [r for r in capture.requests if r["method"] == "POST"]
    assert [r["path"] for r in posts] == ["/v1/responses", "/v1/responses"]
    assert all(bool(r["body"].get("stream")) is streamed for r in posts)
    assert all(r["headers"]["authorization"] == "<redacted>" for r in posts)
    second = posts[1]["body"]["input"]
    assert [i["type"] for i in second if "type" in i] == [
        "reasoning",
        "function_call",
        "function_call_output",
    ]


# The pinned Codex CLI scripts/test-deps.sh installs (tests/clients/package-lock.json).
CODEX = Path(__file__).resolve().parents[1] / "clients" / "node_modules" / ".bin" / "codex"


def test_codex_cli_runs_a_tool_through_the_adapter() -> None:
    binary = os.environ.get("CODEX_BIN") or str(CODEX)
    if not Path(binary).exists():
        pytest.fail(f"{binary} is missing: run scripts/test-deps.sh (npm ci in tests/clients)")
    capture = run_codex(binary)
    assert capture.returncode == 0, capture.stderr[-2000:]
    assert capture.errors == []
    assert capture.output.strip() == "hi"
    posts = [r for r in capture.requests if r["method"] == "POST"]
    assert len(posts) == 2 and all(r["path"] == "/v1/responses" for r in posts)
    assert posts[0]["headers"]["accept"] == "text/event-stream"
    second = posts[1]["body"]["input"]
    call_output = next(i for i in second if i.get("type") == "function_call_output")
    assert "hi" in call_output["output"]
