"""A deterministic synthetic trace of chat requests, with the token counts upstreams would report.

Each request is kept as a small spec and turned into a real request body on demand, so a trace of
tens of thousands of requests with prompts up to 150,000 tokens does not sit in memory.

The "truth" stands in for the upstreams' usage reports:
- true prompt tokens = the gateway's estimate x the model's tokenizer ratio (drawn once per model in
  0.8..1.3) x a little per-request noise;
- true completion tokens follow a per-model log-normal distribution (reasoning models answer
  longer), at one per-request quantile shared by every model: a request that draws a long answer
  draws it from whichever model serves it; each of TENANTS tenants has its own typical length
  (a factor drawn once per tenant: some write reports, some one-liners). They are capped by
  max_tokens and the model's limit.

Every draw comes from one `random.Random(seed)`, so a seed always yields the same trace.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from service.catalog.model import Catalog, Model

AUTO = "auto"

# Assumed popularity of named models (relative weights); catalog models reachable through a
# marketplace but not listed here get weight 1. Unknown slugs are ignored.
POPULARITY: dict[str, float] = {
    "moonshotai/Kimi-K2.5": 16,
    "openai/gpt-oss-120b": 14,
    "zai-org/GLM-4.7": 8,
    "deepseek-ai/DeepSeek-V3.1": 6,
    "moonshotai/Kimi-K2.6": 6,
    "deepseek-ai/DeepSeek-V3-0324": 5,
    "deepseek-ai/DeepSeek-V4-Flash-0731": 5,
    "zai-org/GLM-4.6": 4,
    "zai-org/GLM-5.2": 4,
    "MiniMaxAI/MiniMax-M2.5": 3,
    "moonshotai/Kimi-K2-Thinking": 3,
    "moonshotai/Kimi-K2-Instruct-0905": 3,
}
AUTO_SHARE = 0.15

TOOLS_SHARE = 0.30
JSON_SCHEMA_SHARE = 0.10
IMAGES_SHARE = 0.05
EFFORT_SHARE = 0.10
STREAM_SHARE = 0.50
MAX_TOKENS_SHARE = 0.30
STOP_SHARE = 0.15
LONG_PROMPT_SHARE = 0.30  # agents, retrieval and code: 8,000..150,000 tokens

MIN_PROMPT, MID_PROMPT, MAX_PROMPT = 100, 8_000, 150_000
MAX_TOKENS_CHOICES = (256, 512, 1_024, 2_048, 4_096, 8_192, 16_384)
PROMPT_NOISE_SIGMA = 0.04
COMPLETION_SIGMA = 1.0
# What an upstream stops at when the request sets no max_tokens (Baseten's default, upstreams.md).
UPSTREAM_DEFAULT_MAX_TOKENS = 4_096
TENANTS = 50
TENANT_OUTPUT_SIGMA = 0.8  # spread of the tenants' typical answer lengths (log-normal)
# Median answer length by reasoning mode: reasoning tokens bill as output.
MEDIAN_OUTPUT = {
    "none": (120, 450),
    "opt_in": (180, 700),
    "default_on": (500, 1_800),
    "always_on": (900, 2_500),
}
EFFORT_OUTPUT_FACTOR = {"none": 0.5, "minimal": 0.5, "low": 0.7, "medium": 1.0, "high": 1.8, "xhigh": 2.5,
                        "max": 3.0}
# Headroom kept under a named model's context: the largest tokenizer ratio, the router's margin,
# and room for some output.
_CONTEXT_HEADROOM = 1.3 * 1.1 * 1.05

_FILLER = (
    "Switchyard routes each request to the cheapest route that can serve it; the quick brown fox "
    "jumps over the lazy dog while the ledger counts every token twice. "
)
_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the internal documentation and return the best passages.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "ticket",
        "schema": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "priority": {"type": "integer"}},
        },
    },
}
_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/receipt.png"}}


@dataclass(frozen=True, slots=True)
class ModelTruth:
    """How one model's tokenizer and answers really behave (unknown to the router)."""

    tokenizer_ratio: float
    median_output: float


@dataclass(frozen=True, slots=True)
class TraceRequest:
    index: int
    model: str
    prompt_chars: int
    tools: bool
    json_schema: bool
    images: int
    reasoning_effort: str | None
    stream: bool
    max_tokens: int | None
    stops: int
    prompt_noise: float  # multiplies the true prompt
    output_z: float  # the standard-normal quantile of this request's answer length
    tenant: int = 0

    def body(self) -> dict[str, Any]:
        text = (_FILLER * (self.prompt_chars // len(_FILLER) + 1))[: self.prompt_chars]
        content: Any = text
        if self.images:
            content = [{"type": "text", "text": text}] + [_IMAGE] * self.images
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You are a careful assistant for the platform team."},
                {"role": "user", "content": content},
            ],
        }
        if self.tools:
            body["tools"] = [_TOOL]
        if self.json_schema:
            body["response_format"] = _SCHEMA
        if self.reasoning_effort is not None:
            body["reasoning_effort"] = self.reasoning_effort
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.stops:
            body["stop"] = [f"</answer{i}>" for i in range(self.stops)]
        return body


@dataclass(frozen=True, slots=True)
class Trace:
    requests: tuple[TraceRequest, ...]
    truths: dict[str, ModelTruth]
    seed: int
    tenant_output: tuple[float, ...] = (1.0,)

    def true_usage(self, request: TraceRequest, model: Model, estimated_prompt: int) -> tuple[int, int]:
        """(prompt, completion) tokens the upstream reports when `model` serves `request`."""
        truth = self.truths[model.id]
        prompt = max(1, round(estimated_prompt * truth.tokenizer_ratio * request.prompt_noise))
        factor = EFFORT_OUTPUT_FACTOR.get(request.reasoning_effort or "medium", 1.0)
        factor *= self.tenant_output[request.tenant]
        completion = round(truth.median_output * factor * math.exp(COMPLETION_SIGMA * request.output_z))
        limit = min(request.max_tokens or UPSTREAM_DEFAULT_MAX_TOKENS, model.max_output_tokens)
        return prompt, max(1, min(completion, limit))


def build_trace(catalog: Catalog, count: int = 10_000, seed: int = 1) -> Trace:
    rng = random.Random(seed)
    truths = {}
    for model_id in sorted(catalog.models):
        model = catalog.models[model_id]
        low, high = MEDIAN_OUTPUT[model.features.reasoning]
        truths[model_id] = ModelTruth(
            tokenizer_ratio=rng.uniform(0.8, 1.3), median_output=rng.uniform(low, high)
        )
    tenant_output = tuple(math.exp(rng.gauss(0.0, TENANT_OUTPUT_SIGMA)) for _ in range(TENANTS))
    named = _named_models(catalog)
    weights = [POPULARITY.get(m, 1.0) for m in named]
    vision = [m for m in named if catalog.models[m].features.vision]
    requests = tuple(_request(rng, catalog, i, named, weights, vision) for i in range(count))
    return Trace(requests=requests, truths=truths, seed=seed, tenant_output=tenant_output)


def _named_models(catalog: Catalog) -> list[str]:
    """Models a marketplace reaches, plus the popular ones, in catalog order."""
    reachable = {r.model for r in catalog.routes if r.front_end != "baseten"}
    return [m for m in catalog.models if m in reachable or m in POPULARITY]


def _request(rng: random.Random, catalog: Catalog, index: int, named: list[str], weights: list[float],
             vision: list[str]) -> TraceRequest:
    images = 0
    if vision and rng.random() < IMAGES_SHARE:
        # Clients send images to a model that reads them, or let `auto` find one.
        images = rng.choice((1, 1, 1, 2, 3))
        model_id = AUTO if rng.random() < AUTO_SHARE else rng.choice(vision)
    else:
        model_id = AUTO if rng.random() < AUTO_SHARE else rng.choices(named, weights)[0]
    model = catalog.models.get(model_id)
    f = model.features if model else None
    tools = rng.random() < TOOLS_SHARE and (f is None or (f.tools and f.tool_calling_recommended))
    json_schema = rng.random() < JSON_SCHEMA_SHARE and (f is None or f.structured_outputs)
    # `auto` requests ask only for what some capable model offers: no vision model takes an effort.
    efforts = f.reasoning_efforts if f is not None else (() if images else ("low", "medium", "high"))
    effort = rng.choice(efforts) if efforts and rng.random() < EFFORT_SHARE else None
    max_tokens = rng.choice(MAX_TOKENS_CHOICES) if rng.random() < MAX_TOKENS_SHARE else None
    if model is not None and max_tokens is not None:
        max_tokens = min(max_tokens, model.max_output_tokens)
    stops = 0
    if rng.random() < STOP_SHARE:
        stops = rng.choice((1, 1, 2, 2, 3, 4, 6))
    tokens = _prompt_tokens(rng)
    if model is not None:
        room = int(model.context_length / _CONTEXT_HEADROOM) - (max_tokens or 0) - images * 1_500
        while tokens > room:
            tokens = _prompt_tokens(rng)
    return TraceRequest(
        index=index,
        model=model_id,
        prompt_chars=max(1, tokens * 4 - 60),  # the estimate counts a quarter of the JSON's characters
        tools=tools,
        json_schema=json_schema,
        images=images,
        reasoning_effort=effort,
        stream=rng.random() < STREAM_SHARE,
        max_tokens=max_tokens,
        stops=stops,
        prompt_noise=math.exp(rng.gauss(0.0, PROMPT_NOISE_SIGMA)),
        output_z=NormalDist().inv_cdf(min(max(rng.random(), 1e-6), 1 - 1e-6)),
        tenant=rng.randrange(TENANTS),
    )


def _prompt_tokens(rng: random.Random) -> int:
    """Log-uniform within a short band (100..8,000) and a long band (8,000..150,000: three in ten)."""
    if rng.random() < LONG_PROMPT_SHARE:
        low, high = MID_PROMPT, MAX_PROMPT
    else:
        low, high = MIN_PROMPT, MID_PROMPT
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))
