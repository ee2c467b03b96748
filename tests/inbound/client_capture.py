"""Run real Responses clients (Codex CLI, the OpenAI Agents SDK) against a recording server that
answers through the Responses adapter, offline, and keep what they sent.

    python -m tests.inbound.client_capture codex --codex /work/scratch/codex/node_modules/.bin/codex
    python -m tests.inbound.client_capture agents

Each run is two model turns: the model calls a tool, the client runs it and sends the result back,
the model answers. The second request (system prompt, tools, the first turn's reasoning, call and
output) is written to tests/inbound/fixtures/<client>_responses.json, and every request (method,
path, headers with secrets redacted, body) to <client>_capture.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.inbound.responses_support import Recorder, completion

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = "moonshotai/Kimi-K2.6"
CODEX_SHELL_TOOLS = ("exec_command", "shell_command", "shell")


@dataclass
class Capture:
    requests: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    output: str  # what the client printed or returned as the final answer
    returncode: int = 0
    stderr: str = ""


def codex_script(body: dict[str, Any], turn: int) -> dict[str, Any]:
    """Turn 0: reason, then call Codex's shell tool with `echo hi`; later turns: answer "hi"."""
    if turn == 0:
        names = [t.get("name") for t in body.get("tools", []) if t.get("type") == "function"]
        name = next((n for n in CODEX_SHELL_TOOLS if n in names), None)
        if name is not None:
            arguments = {"cmd": "echo hi"} if name == "exec_command" else {"command": ["echo", "hi"]}
            return completion(
                reasoning="The user wants a greeting. I will echo it.",
                tool_calls=[("call_echo_0", name, json.dumps(arguments))],
                finish_reason="tool_calls",
            )
    return completion(reasoning="The command printed hi.", content="hi")


CODEX_CONFIG = """\
model = "{model}"
model_provider = "switchyard"

[model_providers.switchyard]
name = "Switchyard"
base_url = "{base_url}/v1"
wire_api = "responses"
env_key = "SWITCHYARD_API_KEY"
request_max_retries = 0
stream_max_retries = 0
"""


def run_codex(binary: str, prompt: str = "say hi", timeout: float = 120) -> Capture:
    with Recorder(codex_script) as recorder, tempfile.TemporaryDirectory(prefix="codex-home-") as home:
        Path(home, "config.toml").write_text(CODEX_CONFIG.format(model=MODEL, base_url=recorder.url))
        workdir = Path(home, "work")
        workdir.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "CODEX_HOME": home,
            "SWITCHYARD_API_KEY": "sk-switchyard-dummy",
            "NO_COLOR": "1",
        }
        proc = subprocess.run(
            [binary, "exec", "--skip-git-repo-check", prompt],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # the caller asserts on the return code and keeps stderr for the message
        )
        return Capture(recorder.requests, recorder.errors, proc.stdout, proc.returncode, proc.stderr)


def agents_script(body: dict[str, Any], turn: int) -> dict[str, Any]:
    if turn == 0:
        return completion(
            reasoning="I should look the weather up.",
            tool_calls=[("call_weather_0", "get_weather", '{"city": "Paris"}')],
            finish_reason="tool_calls",
        )
    return completion(reasoning="The tool said sunny.", content="It is sunny in Paris.")


def run_agents(*, streamed: bool = False) -> Capture:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)  # the default exporter would post traces to OpenAI

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return f"Sunny in {city}."

    async def main(url: str) -> str:
        client = AsyncOpenAI(base_url=url + "/v1", api_key="sk-switchyard-dummy", max_retries=0, timeout=30)
        try:
            agent = Agent(
                name="Weather",
                instructions="Answer weather questions with the get_weather tool.",
                tools=[get_weather],
                model=OpenAIResponsesModel(model=MODEL, openai_client=client),
            )
            if streamed:
                run = Runner.run_streamed(agent, "What is the weather in Paris?")
                async for _ in run.stream_events():
                    pass
                return str(run.final_output)
            result = await Runner.run(agent, "What is the weather in Paris?")
            return str(result.final_output)
        finally:
            await client.close()

    with Recorder(agents_script) as recorder:
        output = asyncio.run(main(recorder.url))
        return Capture(recorder.requests, recorder.errors, output)


def save(name: str, capture: Capture) -> None:
    posts = [r for r in capture.requests if r["method"] == "POST"]
    FIXTURES.mkdir(exist_ok=True)
    (FIXTURES / f"{name}_responses.json").write_text(json.dumps(posts[-1]["body"], indent=2) + "\n")
    (FIXTURES / f"{name}_capture.json").write_text(json.dumps(capture.requests, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("client", choices=("codex", "agents"))
    parser.add_argument("--codex", default=os.environ.get("CODEX_BIN", "codex"), help="the codex binary")
    args = parser.parse_args()
    capture = run_codex(args.codex) if args.client == "codex" else run_agents()
    print(f"{len(capture.requests)} requests, rc={capture.returncode}, output={capture.output.strip()!r}")
    if capture.errors:
        print("adapter refused:", json.dumps(capture.errors, indent=2), file=sys.stderr)
        return 1
    save("codex" if args.client == "codex" else "agents_sdk", capture)
    return 0


if __name__ == "__main__":
    sys.exit(main())
