"""Read the recorded Baseten exchanges (go-vcr cassettes from maruel/genai, Apache-2.0: see recordings/)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

RECORDINGS = Path(__file__).parent / "recordings"
DEEPSEEK_STREAM = "deepseek-ai__DeepSeek-V4-Pro_thinking__GenStream-Text.yaml"
GPT_OSS_TOOLS = "openai__gpt-oss-120b_thinking__GenStream-Tools-SquareRoot-1.yaml"
GLM_SCHEMA = "zai-org__GLM-5.2_thinking__GenSync-JSONSchema.yaml"
BAD_KEY = "errors__bad_apiKey__GenSync.yaml"
WARMUP = "Warmup.yaml"


def interaction(name: str) -> dict:
    return yaml.safe_load((RECORDINGS / name).read_text("utf-8"))["interactions"][0]


def response_body(name: str) -> bytes:
    return interaction(name)["response"]["body"].encode("utf-8")


def sse_payloads(raw: bytes) -> list[bytes]:
    """The data payloads of an SSE body framed as Baseten frames it (LF, one data line per event)."""
    return [line[6:] for event in raw.split(b"\n\n") for line in event.split(b"\n") if line.startswith(b"data: ")]


def sse_chunks(raw: bytes) -> list[dict]:
    return [json.loads(p) for p in sse_payloads(raw) if p != b"[DONE]"]


def recorded_chunks(name: str) -> list[dict]:
    return sse_chunks(response_body(name))
