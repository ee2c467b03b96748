"""A day of traffic: arrival times (a diurnal curve with bursts), tenants with their own kinds of
prompt and answer lengths, and the truth the upstreams would report (real tokenizer counts, answer
lengths and call durations), none of which the router sees.

Everything comes from `random.Random` seeded by the run's seed, so a seed gives the same trace;
the shape (curve, bursts, tenants, per-model truth) is drawn once per seed and is the same at
every load, only the arrival rate changes.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import orjson

from benchmarks.capacity.text import ENCODINGS, KINDS, Corpus, Segment, token_count
from benchmarks.trace import (
    EFFORT_OUTPUT_FACTOR,
    MAX_TOKENS_CHOICES,
    MEDIAN_OUTPUT,
    POPULARITY,
    UPSTREAM_DEFAULT_MAX_TOKENS,
)
from service.catalog.model import Catalog, Model

AUTO = "auto"
DAY = 86_400.0
TENANTS = 40
AUTO_SHARE = 0.15
TOOLS_SHARE = 0.30
JSON_SCHEMA_SHARE = 0.10
IMAGES_SHARE = 0.03
EFFORT_SHARE = 0.10
STREAM_SHARE = 0.50
MAX_TOKENS_SHARE = 0.30
STOP_SHARE = 0.15
MIN_PROMPT, MID_PROMPT, MAX_PROMPT = 100, 8_000, 150_000
COMPLETION_SIGMA = 0.9
TENANT_OUTPUT_SIGMA = 0.8
TENANT_MODEL_SIGMA = 0.3  # a tenant's answers differ by model too, a little
BURSTS_PER_DAY = 6  # per simulated day (one cycle of the curve, however long)
# Per-token prices the marketplaces' own charges follow where the catalog has no Baseten price
# (the trace's truth only: the router never sees them).
HIDDEN_PRICES = {"moonshotai/Kimi-K2-Thinking": (0.60, 2.50), "moonshotai/Kimi-K2-Instruct-0905": (0.60, 2.50)}
DEFAULT_HIDDEN_PRICE = (0.60, 2.40)
# Which stand-in tokenizer counts a model's tokens (its family's nearest of the two shipped).
_ENCODING_BY_FAMILY = {"openai": 0, "moonshotai": 0, "MiniMaxAI": 0, "deepseek-ai": 1, "zai-org": 1}

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
        "schema": {"type": "object", "properties": {"title": {"type": "string"}, "priority": {"type": "integer"}}},
    },
}
_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/receipt.png"}}
_SYSTEM = "You are a careful assistant for the platform team."
_TAILS = tuple(f"\n\nNow {verb} the above{how}." for verb in ("summarise", "fix", "explain", "translate", "classify",
                                                              "review", "answer questions on")
               for how in ("", " briefly", " step by step", " in a table", " for a new engineer"))


@dataclass(frozen=True, slots=True)
class ModelTruth:
    """How a model really behaves, hidden from the router."""

    encoding: int  # index into ENCODINGS
    template_tokens: int  # the chat template's own tokens per request
    tool_tokens: int  # what one tool definition costs in its template
    image_tokens: int
    median_output: float
    prefill_tps: float  # prompt tokens a second
    decode_tps: float  # output tokens a second


@dataclass(frozen=True, slots=True)
class Tenant:
    kinds: tuple[float, ...]  # cumulative weights over text.KINDS
    long_share: float  # share of its prompts in the long band
    output_factor: float
    favourite: str | None


@dataclass(frozen=True, slots=True)
class Burst:
    start: float
    seconds: float
    multiplier: float  # the whole rate, times this, while it lasts; the extra is this tenant's
    tenant: int


@dataclass(frozen=True, slots=True)
class Shape:
    seed: int
    hours: float
    tenants: tuple[Tenant, ...]
    bursts: tuple[Burst, ...]
    truths: dict[str, ModelTruth]
    pair_factor_seed: int

    def rate_factor(self, t: float) -> float:
        """Diurnal curve (mean 1 over the day) times any burst: the rate at `t` over the mean."""
        return diurnal(t / (self.hours * 3600.0)) * (1.0 + sum(b.multiplier - 1.0 for b in self.bursts
                                                               if b.start <= t < b.start + b.seconds))

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "hours": self.hours,
            "diurnal": {"peak_over_mean": round(max(diurnal(i / 1440) for i in range(1440)), 2),
                        "trough_over_mean": round(min(diurnal(i / 1440) for i in range(1440)), 2)},
            "bursts": [{"start_min": round(b.start / 60, 1), "minutes": round(b.seconds / 60, 1),
                        "x": round(b.multiplier, 2), "tenant": b.tenant} for b in self.bursts],
            "tenants": len(self.tenants),
            "tokenizers": {m: ENCODINGS[t.encoding] for m, t in sorted(self.truths.items())
                           if m in POPULARITY},
        }


def diurnal(day_fraction: float) -> float:
    """Traffic over its daily mean: low at night, a morning ramp, an afternoon peak (mean 1)."""
    x = 2 * math.pi * day_fraction
    return 1.0 + 0.6 * math.cos(x - 2 * math.pi * 15 / 24) + 0.15 * math.cos(2 * x - 2 * math.pi * 22 / 24)


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    at: float  # seconds from the start
    tenant: int
    model: str
    segments_seed: int
    prompt_chars: int
    tools: bool
    json_schema: bool
    images: int
    reasoning_effort: str | None
    stream: bool
    max_tokens: int | None
    stops: int
    output_z: float
    speed_jitter: float
    content_tokens: tuple[int, ...]  # the prompt text's tokens, per encoding
    tail: str  # the question closing the prompt, unique to the request

    def body(self, corpus: Corpus, shape: Shape) -> dict[str, Any]:
        text = "".join(s.text for s in pick_segments(corpus, shape.tenants[self.tenant], self.segments_seed,
                                                     self.prompt_chars)) + self.tail
        content: Any = text
        if self.images:
            content = [{"type": "text", "text": text}] + [_IMAGE] * self.images
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": content}],
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
class Usage:
    prompt: int
    completion: int
    seconds: float  # the whole call, buffered (as xpay answers)
    ttft: float


class Truth:
    """The upstreams' answers to the trace's requests, per model."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._fixed = {ENCODINGS[i]: (token_count(_SYSTEM, ENCODINGS[i]),
                                      token_count(orjson.dumps(_TOOL).decode(), ENCODINGS[i]))
                       for i in range(len(ENCODINGS))}
        self._pairs: dict[tuple[int, str], float] = {}
        # The question closing each prompt, counted once per encoding.
        self.tails = tuple((tail, tuple(token_count(tail, e) for e in ENCODINGS)) for tail in _TAILS)

    def prompt_tokens(self, req: Request, model: Model) -> int:
        truth = self.shape.truths[model.id]
        system, tool = self._fixed[ENCODINGS[truth.encoding]]
        tokens = req.content_tokens[truth.encoding] + system + truth.template_tokens
        if req.tools:
            tokens += tool + truth.tool_tokens
        return tokens + req.images * truth.image_tokens

    def usage(self, req: Request, model: Model) -> Usage:
        truth = self.shape.truths[model.id]
        prompt = self.prompt_tokens(req, model)
        factor = EFFORT_OUTPUT_FACTOR.get(req.reasoning_effort or "medium", 1.0)
        factor *= self.shape.tenants[req.tenant].output_factor * self._pair_factor(req.tenant, model.id)
        completion = round(truth.median_output * factor * math.exp(COMPLETION_SIGMA * req.output_z))
        limit = min(req.max_tokens or UPSTREAM_DEFAULT_MAX_TOKENS, model.max_output_tokens)
        completion = max(1, min(completion, limit))
        ttft = (0.25 + prompt / truth.prefill_tps) * req.speed_jitter
        seconds = ttft + completion / truth.decode_tps * req.speed_jitter
        return Usage(prompt, completion, seconds, ttft)

    def fits(self, req: Request, model: Model) -> bool:
        """What the upstream's own context check says."""
        return self.prompt_tokens(req, model) + (req.max_tokens or 1) <= model.context_length

    def _pair_factor(self, tenant: int, model: str) -> float:
        factor = self._pairs.get((tenant, model))
        if factor is None:
            rng = random.Random(f"{self.shape.pair_factor_seed}-{tenant}-{model}")
            factor = self._pairs[(tenant, model)] = math.exp(rng.gauss(0.0, TENANT_MODEL_SIGMA))
        return factor


def pick_segments(corpus: Corpus, tenant: Tenant, seed: int, chars: int) -> list[Segment]:
    """Whole segments of the tenant's kinds of text until the prompt reaches `chars` JSON bytes."""
    rng = random.Random(seed)
    out: list[Segment] = []
    size = 0
    while size < chars:
        kind = rng.choices(KINDS, cum_weights=tenant.kinds)[0]
        pool = corpus.segments[kind]
        segment = pool[rng.randrange(len(pool))]
        if size and size + segment.json_bytes > chars * 1.3:
            # Past the target by much: a smaller one of the same kind, if any, ends the prompt.
            smaller = [s for s in pool if s.json_bytes <= chars * 1.3 - size]
            if not smaller:
                break
            segment = smaller[rng.randrange(len(smaller))]
        out.append(segment)
        size += segment.json_bytes
    return out


def build_shape(catalog: Catalog, seed: int, hours: float) -> Shape:
    rng = random.Random(f"shape-{seed}")
    truths = {}
    for model_id in sorted(catalog.models):
        model = catalog.models[model_id]
        low, high = MEDIAN_OUTPUT[model.features.reasoning]
        family = model_id.split("/", 1)[0]
        truths[model_id] = ModelTruth(
            encoding=_ENCODING_BY_FAMILY.get(family, rng.randrange(len(ENCODINGS))),
            template_tokens=rng.randint(8, 60),
            tool_tokens=rng.randint(20, 90),
            image_tokens=rng.randint(600, 1_800),
            median_output=rng.uniform(low, high),
            prefill_tps=rng.uniform(4_000, 12_000),
            decode_tps=rng.uniform(40, 140),
        )
    named = _named_models(catalog)
    tenants = []
    for _ in range(TENANTS):
        dominant = rng.randrange(len(KINDS))
        weights = [(4.0 if i == dominant else 0.0) + rng.random() * 0.6 for i in range(len(KINDS))]
        tenants.append(Tenant(
            kinds=tuple(itertools.accumulate(weights)),
            long_share=rng.betavariate(1.2, 2.5),
            output_factor=math.exp(rng.gauss(0.0, TENANT_OUTPUT_SIGMA)),
            favourite=rng.choice(named) if rng.random() < 0.5 else None,
        ))
    seconds = hours * 3600.0
    bursts = []
    for _ in range(_poisson(rng, BURSTS_PER_DAY)):
        bursts.append(Burst(start=rng.uniform(0, seconds), seconds=rng.uniform(120, 900),
                            multiplier=rng.uniform(1.8, 4.0), tenant=rng.randrange(TENANTS)))
    bursts.sort(key=lambda b: b.start)
    return Shape(seed=seed, hours=hours, tenants=tuple(tenants), bursts=tuple(bursts), truths=truths,
                 pair_factor_seed=rng.getrandbits(32))


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def arrivals(shape: Shape, per_minute: float, rng: random.Random) -> list[tuple[float, int | None]]:
    """(time, burst tenant or None) by thinning a Poisson process at the curve's highest rate."""
    seconds = shape.hours * 3600.0
    # A bound on the curve: the diurnal peak times the most bursts overlapping (at some burst's start).
    overlap = max([1.0] + [1.0 + sum(o.multiplier - 1.0 for o in shape.bursts if o.start <= b.start < o.start + o.seconds)
                           for b in shape.bursts])
    top = per_minute / 60.0 * max(diurnal(i / 1440) for i in range(1440)) * 1.01 * overlap
    out: list[tuple[float, int | None]] = []
    t = 0.0
    while True:
        t += rng.expovariate(top)
        if t >= seconds:
            return out
        factor = shape.rate_factor(t)
        if rng.random() * top >= per_minute / 60.0 * factor:
            continue
        # The share of the rate a burst adds is its tenant's.
        base = diurnal(t / seconds)
        burst_tenant = None
        for b in shape.bursts:
            if b.start <= t < b.start + b.seconds and rng.random() < base * (b.multiplier - 1.0) / factor:
                burst_tenant = b.tenant
                break
        out.append((t, burst_tenant))


def build_requests(catalog: Catalog, corpus: Corpus, shape: Shape, truth: Truth, per_minute: float,
                   seed: int) -> list[Request]:
    rng = random.Random(f"requests-{seed}-{per_minute:.6f}")
    named = _named_models(catalog)
    weights = [POPULARITY.get(m, 1.0) for m in named]
    vision = [m for m in named if catalog.models[m].features.vision]
    out = []
    for index, (at, burst_tenant) in enumerate(arrivals(shape, per_minute, rng)):
        tenant = burst_tenant if burst_tenant is not None else rng.randrange(len(shape.tenants))
        out.append(make_request(rng, catalog, corpus, shape, truth, index, at, tenant, named, weights, vision))
    return out


def make_request(rng: random.Random, catalog: Catalog, corpus: Corpus, shape: Shape, truth: Truth, index: int,
                 at: float, tenant: int, named: list[str], weights: list[float], vision: list[str]) -> Request:
    who = shape.tenants[tenant]
    images = 0
    if vision and rng.random() < IMAGES_SHARE:
        images = rng.choice((1, 1, 2))
        model_id = AUTO if rng.random() < AUTO_SHARE else rng.choice(vision)
    elif rng.random() < AUTO_SHARE:
        model_id = AUTO
    elif who.favourite is not None and rng.random() < 0.5:
        model_id = who.favourite
    else:
        model_id = rng.choices(named, weights)[0]
    model = catalog.models.get(model_id)
    f = model.features if model else None
    tools = rng.random() < TOOLS_SHARE and (f is None or (f.tools and f.tool_calling_recommended))
    json_schema = rng.random() < JSON_SCHEMA_SHARE and (f is None or f.structured_outputs)
    efforts = f.reasoning_efforts if f is not None else (() if images else ("low", "medium", "high"))
    effort = rng.choice(efforts) if efforts and rng.random() < EFFORT_SHARE else None
    max_tokens = rng.choice(MAX_TOKENS_CHOICES) if rng.random() < MAX_TOKENS_SHARE else None
    if model is not None and max_tokens is not None:
        max_tokens = min(max_tokens, model.max_output_tokens)
    stops = rng.choice((1, 1, 2, 2, 3, 4, 6)) if rng.random() < STOP_SHARE else 0
    tail, tail_tokens = truth.tails[rng.randrange(len(truth.tails))]
    while True:
        band = (MID_PROMPT, MAX_PROMPT) if rng.random() < who.long_share else (MIN_PROMPT, MID_PROMPT)
        target = int(math.exp(rng.uniform(math.log(band[0]), math.log(band[1]))))
        segments_seed = rng.getrandbits(48)
        segments = pick_segments(corpus, who, segments_seed, target * 4)
        counts = tuple(sum(s.tokens[i] for s in segments) + tail_tokens[i] for i in range(len(ENCODINGS)))
        req = Request(
            index=index, at=at, tenant=tenant, model=model_id, segments_seed=segments_seed,
            prompt_chars=target * 4, tools=tools, json_schema=json_schema, images=images,
            reasoning_effort=effort, stream=rng.random() < STREAM_SHARE, max_tokens=max_tokens, stops=stops,
            output_z=NormalDist().inv_cdf(min(max(rng.random(), 1e-6), 1 - 1e-6)),
            speed_jitter=math.exp(rng.gauss(0.0, 0.15)), content_tokens=counts, tail=tail,
        )
        # A client names a model its prompt fits (the upstream's own count), as real ones learn to.
        if model is None or truth.fits(req, model):
            return req


def _named_models(catalog: Catalog) -> list[str]:
    reachable = {r.model for r in catalog.routes if r.front_end != "baseten"}
    return [m for m in catalog.models if m in reachable or m in POPULARITY]
