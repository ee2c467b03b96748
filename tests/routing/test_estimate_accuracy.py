"""The prompt-token estimate against what upstreams reported: the recordings and the stand-in engine."""

from __future__ import annotations

import json

from service.chat.validate import validate_chat_request
from service.routing.estimate import Calibration, base_prompt_estimate, context_estimate, cost_estimate
from service.simulator.engine import prompt_tokens_for
from tests.cassettes import DEEPSEEK_STREAM, GPT_OSS_TOOLS, interaction, recorded_chunks


def recorded(name: str) -> tuple[dict, int]:
    body = json.loads(interaction(name)["request"]["body"])
    usage = next(c["usage"] for c in reversed(recorded_chunks(name)) if c.get("usage"))
    return body, usage["prompt_tokens"]


def estimate(body: dict) -> int:
    return base_prompt_estimate(body, validate_chat_request(body).image_parts)


def test_error_against_the_recorded_upstreams():
    errors = {}
    for name in (DEEPSEEK_STREAM, GPT_OSS_TOOLS):
        body, actual = recorded(name)
        errors[name] = (estimate(body) - actual) / actual
    print("estimate error vs recorded prompt_tokens:", {k.split("__")[0]: f"{v:+.0%}" for k, v in errors.items()})
    # Measured, uncalibrated: DeepSeek 15 vs 13 (+15%); gpt-oss with a tool 114 vs 157 (-27%: its
    # chat template's own tokens). Calibration learns each model's ratio from the usage it sees.
    assert all(abs(e) < 0.30 for e in errors.values())


def test_context_estimate_is_conservative_on_the_recordings():
    for name in (DEEPSEEK_STREAM, GPT_OSS_TOOLS):
        body, actual = recorded(name)
        assert context_estimate(estimate(body), 1.0) >= actual * 0.95


def test_the_engine_counts_as_the_estimate_does():
    ascii_body = {"model": "m", "messages": [{"role": "user", "content": "hello " * 500}]}
    assert estimate(ascii_body) == prompt_tokens_for(ascii_body["messages"])
    # Bytes, not characters: non-Latin text is estimated higher, on the safe side.
    mixed = {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "é ü ß 字"}]}
    assert prompt_tokens_for(mixed["messages"]) <= estimate(mixed) <= prompt_tokens_for(mixed["messages"]) * 1.2


def test_calibration_learns_a_models_tokenizer():
    body, actual = recorded(GPT_OSS_TOOLS)
    base = estimate(body)
    calibration = Calibration()
    for _ in range(20):
        calibration.observe("openai/gpt-oss-120b", base, actual, 45)
    ratio = calibration.prompt_ratio("openai/gpt-oss-120b")
    assert abs(cost_estimate(base, ratio) - actual) <= 1
    assert calibration.expected_output("openai/gpt-oss-120b", None) in range(44, 47)
    assert context_estimate(base, ratio) >= actual  # the context check stays conservative after learning
