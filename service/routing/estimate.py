"""Token estimates without a tokenizer: no network, no model download, calibrated by what
upstreams report.

The base estimate is a quarter of the UTF-8 bytes of the JSON the upstream receives (messages
and tool schemas; bytes rather than characters, since non-Latin scripts take more tokens per
character); images count a fixed, generous amount. Each model keeps a running ratio of
reported prompt tokens to estimate, so the estimate converges on its real tokenizer; the
context check adds a safety margin on top, the cost estimate does not.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.routing.answer_spread import PRIOR_SIGMA, capped_mean, negligible_cap, sigma_from, tail_mean

_PRIOR_FAR = negligible_cap(PRIOR_SIGMA)

IMAGE_TOKENS = 1_500
# The most one image may count for in a hard budget's reservation: above what the vision encoders
# of the catalog's models produce for their largest accepted image.
IMAGE_TOKENS_BOUND = 16_384
CONTEXT_MARGIN = 1.10
# Chat templates add tokens the JSON does not show (gpt-oss's adds about 43 to a one-tool request);
# the ratio learned per model cannot express a fixed overhead, so the context check adds one.
TEMPLATE_ALLOWANCE = 64
DEFAULT_MAX_OUTPUT = 4_096  # Baseten's default max_tokens
PRIOR_OUTPUT = 256
_EMA = 0.05
# Answer lengths spread far more than prompt ratios (a factor of two either way is common): their
# averages follow about the last two hundred answers, or one in ten would be 15% off.
_OUTPUT_EMA = 0.01
# A tenant's own answer lengths count once there are this many of them; so do a reasoning effort's
# and a model's spread of lengths.
TENANT_MIN_SAMPLES = 5
SPREAD_MIN_SAMPLES = 10
# The spread learns only from answers whose cap was this many times their expectation or more.
SPREAD_CAP_FACTOR = 4.0
# A tenant's ratio on one model counts as far as samples / (samples + this); models remembered per tenant.
PAIR_PRIOR_SAMPLES = 10
MODELS_PER_TENANT = 64
# Reasoning efforts remembered (the API's values are a handful; more is not a real effort).
EFFORT_SLOTS = 16
# Tenants remembered per process; the least recently seen go first.
TENANT_SLOTS = 10_000
# A seeded average counts as at most this many answers: enough to outweigh the prior, few enough
# that a change in traffic shows within a few hundred answers.
SEED_MAX_SAMPLES = 50


@dataclass(slots=True)
class _Stats:
    prompt_ratio: float = 1.0
    output_tokens: float = PRIOR_OUTPUT  # uncapped answers' mean, at the default reasoning effort
    samples: int = 0
    # Running means of log(answer / its expectation) and of its square: the spread of answers.
    log_mean: float = 0.0
    log_square: float = PRIOR_SIGMA * PRIOR_SIGMA
    spread_samples: int = 0
    # What they give, kept so planning reads them: the log spread, and the cap past which it is moot.
    sigma: float = PRIOR_SIGMA
    far: float = _PRIOR_FAR

    def add_spread(self, residual: float) -> None:
        weight = max(_OUTPUT_EMA, 1.0 / (self.spread_samples + 1))
        self.log_mean += weight * (residual - self.log_mean)
        self.log_square += weight * (residual * residual - self.log_square)
        self.spread_samples += 1
        if self.spread_samples >= SPREAD_MIN_SAMPLES:
            self.sigma = sigma_from(self.log_mean, self.log_square)
            self.far = negligible_cap(self.sigma)


@dataclass(slots=True)
class _Ratio:
    """A running ratio of answers to what was expected without it (a reasoning effort's)."""

    ratio: float = 1.0
    samples: int = 0

    def add(self, ratio: float) -> None:
        weight = max(_OUTPUT_EMA, 1.0 / (self.samples + 1))
        self.ratio += weight * (ratio - self.ratio)
        self.samples += 1

    @property
    def value(self) -> float:
        return self.ratio if self.samples >= TENANT_MIN_SAMPLES else 1.0


@dataclass(slots=True)
class _TenantLength:
    """How long a tenant's answers run against each model's average: one ratio across models,
    since a tenant that writes reports does so whichever model serves it. The same for its
    prompts' tokens per estimated token: code, logs or Chinese text tokenize very differently
    from English prose, and a tenant tends to send one kind."""

    ratio: float = 1.0
    samples: int = 0
    prompt: float = 1.0
    prompt_samples: int = 0
    # And how it runs on each model against that one ratio (a tenant's answers differ by model too).
    models: dict[str, _Ratio] = field(default_factory=dict)

    def on_model(self, model: str) -> float:
        """The ratio for this model, shrunk toward 1 until the pair has answers enough to trust."""
        own = self.models.get(model)
        if own is None:
            return 1.0
        trust = own.samples / (own.samples + PAIR_PRIOR_SAMPLES)
        return 1.0 + trust * (own.ratio - 1.0)

    def add_on_model(self, model: str, ratio: float) -> None:
        own = self.models.get(model)
        if own is None:
            if len(self.models) >= MODELS_PER_TENANT:
                return
            own = self.models[model] = _Ratio()
        own.add(ratio)

    def add(self, ratio: float) -> None:
        weight = max(_OUTPUT_EMA, 1.0 / (self.samples + 1))
        self.ratio += weight * (ratio - self.ratio)
        self.samples += 1

    def add_prompt(self, ratio: float) -> None:
        weight = max(_EMA, 1.0 / (self.prompt_samples + 1))
        self.prompt += weight * (ratio - self.prompt)
        self.prompt_samples += 1


class Calibration:
    """Per-model running ratios, learned from every upstream usage report, and each tenant's own
    answer lengths per model: one tenant's long reports and another's one-line answers cost very
    differently on a per-token route against a flat one (process-local: losing it costs a little
    accuracy, never correctness)."""

    def __init__(self, tenant_slots: int = TENANT_SLOTS) -> None:
        self._stats: dict[str, _Stats] = {}
        self._tenants: OrderedDict[Any, _TenantLength] = OrderedDict()
        self._tenant_slots = tenant_slots
        self._efforts: dict[str, _Ratio] = {}
        self._lock = threading.Lock()

    def prompt_ratio(self, model: str, tenant: Any = None) -> float:
        """Reported prompt tokens per estimated token for this model; with a tenant, times how its
        prompts run against the model's average once it has enough of them."""
        stats = self._stats.get(model)
        ratio = stats.prompt_ratio if stats else 1.0
        own = self._tenants.get(tenant) if tenant is not None else None
        if own is not None and own.prompt_samples >= TENANT_MIN_SAMPLES:
            ratio *= own.prompt
        return ratio

    def expected_output(self, model: str, requested_max: int | None, tenant: Any = None,
                        effort: str | None = None) -> int:
        """Output tokens to expect: the model's mean, times the tenant's and the reasoning effort's
        ratios, then what the cap leaves of that on average (a cap near the mean cuts the long
        answers, so the mean under it is below both)."""
        stats = self._stats.get(model)
        mean = self._mean(model, stats, tenant, effort)
        if requested_max is None:
            return max(1, int(mean))
        sigma, far = (stats.sigma, stats.far) if stats is not None else (PRIOR_SIGMA, _PRIOR_FAR)
        if requested_max >= mean * far:
            return max(1, int(mean))
        return max(1, min(requested_max, round(capped_mean(mean, sigma, requested_max))))

    def _mean(self, model: str, stats: _Stats | None, tenant: Any, effort: str | None) -> float:
        """The uncapped mean for this model, tenant and effort."""
        mean = stats.output_tokens if stats else PRIOR_OUTPUT
        own = self._tenants.get(tenant) if tenant is not None else None
        if own is not None and own.samples >= TENANT_MIN_SAMPLES:
            mean *= own.ratio * own.on_model(model)
        return mean * self._effort_ratio(effort)

    def _effort_ratio(self, effort: str | None) -> float:
        known = self._efforts.get(effort) if effort is not None else None
        return known.value if known is not None else 1.0

    def seed(self, models: dict[str, tuple[float, int]], tenants: dict[Any, tuple[float, int]] | None = None,
             *, max_weight: int = SEED_MAX_SAMPLES) -> None:
        """Start from what the ledger knows instead of the prior: each model's mean answer length
        and each tenant's ratio to the models' means, with how many answers back each. The counts
        are capped so live answers still move the averages; prompt ratios are not in the ledger
        and are learned live. Models or tenants already learned in this process keep what they learned."""
        with self._lock:
            for model, (mean, answers) in models.items():
                if answers <= 0 or mean <= 0 or model in self._stats:
                    continue
                self._stats[model] = _Stats(output_tokens=float(mean), samples=min(answers, max_weight))
            for tenant, (ratio, answers) in (tenants or {}).items():
                if answers <= 0 or ratio <= 0 or tenant in self._tenants:
                    continue
                self._tenant(tenant)
                own = self._tenants[tenant]
                own.ratio, own.samples = float(ratio), min(answers, max_weight)

    def observe(self, model: str, estimated_prompt: int, prompt_tokens: int, completion_tokens: int,
                tenant: Any = None, *, cap: int | None = None, effort: str | None = None) -> None:
        """An answer's reported usage. `cap`: the most output tokens it could have had (the client's
        `max_tokens`, or the upstream's default); an answer that reached it was cut short, and
        counts as what such answers run to on average, not as its truncated length. `effort`: the
        reasoning effort the client asked for, whose answers run longer or shorter on every model."""
        if estimated_prompt <= 0 or prompt_tokens <= 0:
            return
        ratio = prompt_tokens / estimated_prompt
        with self._lock:
            stats = self._stats.setdefault(model, _Stats())
            expected = self._mean(model, stats, tenant, effort)
            truncated = cap is not None and completion_tokens >= cap
            answer = tail_mean(expected, stats.sigma, cap) if truncated and cap is not None else completion_tokens
            effort_ratio = self._effort_ratio(effort)
            if stats.samples >= TENANT_MIN_SAMPLES:
                # Against the model's averages before this answer joined them, once they mean
                # something (a fresh model's are only the priors). The spread too, and only where
                # the expectation knew the tenant: a newcomer's first answers are surprises of the
                # average, not of the answers.
                known = tenant is None or self._known_tenant(tenant)
                # Answers under a cap near their mean are the short ones only: too narrow a spread.
                uncut = cap is None or cap >= SPREAD_CAP_FACTOR * expected
                if uncut and answer > 0 and known:
                    stats.add_spread(math.log(answer / max(expected, 1.0)))
                if tenant is not None:
                    own = self._tenant(tenant)
                    if own.samples >= TENANT_MIN_SAMPLES:
                        own.add_on_model(model, answer / max(stats.output_tokens * effort_ratio * own.ratio, 1.0))
                    own.add(answer / max(stats.output_tokens * effort_ratio * own.on_model(model), 1.0))
                    own.add_prompt(ratio / stats.prompt_ratio)
                if effort is not None:
                    self._effort(effort).add(answer / max(self._mean(model, stats, tenant, None), 1.0))
            # Learn fast at first, then settle into a moving average.
            first = 1.0 / (stats.samples + 1)
            stats.prompt_ratio += max(_EMA, first) * (ratio - stats.prompt_ratio)
            stats.output_tokens += max(_OUTPUT_EMA, first) * (answer / effort_ratio - stats.output_tokens)
            stats.samples += 1

    def _known_tenant(self, tenant: Any) -> bool:
        own = self._tenants.get(tenant)
        return own is not None and own.samples >= TENANT_MIN_SAMPLES

    def _effort(self, effort: str) -> _Ratio:
        known = self._efforts.get(effort)
        if known is None:
            known = _Ratio()
            if len(self._efforts) < EFFORT_SLOTS:  # past that, learnt from and forgotten
                self._efforts[effort] = known
        return known

    def _tenant(self, tenant: Any) -> _TenantLength:
        own = self._tenants.get(tenant)
        if own is None:
            own = self._tenants[tenant] = _TenantLength()
            if len(self._tenants) > self._tenant_slots:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(tenant)
        return own


def base_prompt_estimate(body: dict[str, Any], image_parts: int) -> int:
    return prompt_sizes(body, image_parts)[0]


def prompt_sizes(body: dict[str, Any], image_parts: int) -> tuple[int, int]:
    """(estimate, bound) of a request's prompt tokens: the one prompt estimator every part of the
    gateway uses, and a bound it can never exceed -- a token is never shorter than a byte, and the
    JSON's keys and quotes outnumber a chat template's special tokens (images count at their own
    bound, not at the bytes of their data)."""
    messages = body.get("messages") or []
    size = len(orjson.dumps(messages))
    tools = body.get("tools")
    if tools:
        size += len(orjson.dumps(tools))
    estimate = math.ceil(size / 4) + image_parts * IMAGE_TOKENS
    if image_parts:
        size = max(0, size - _image_bytes(messages))
    return estimate, size + TEMPLATE_ALLOWANCE + image_parts * IMAGE_TOKENS_BOUND


def completion_estimate(text_bytes: int) -> int:
    """Tokens of an answer whose upstream reported none, from the bytes of its text."""
    return max(1, math.ceil(text_bytes / 4))


def _image_bytes(messages: list[Any]) -> int:
    """Bytes of image data inside the messages (walked without recursion: two known levels)."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                if isinstance(url, str):
                    total += len(url.encode())
    return total


def context_estimate(base: int, ratio: float) -> int:
    """Conservative: never below the raw estimate, plus a margin and the template's overhead."""
    return math.ceil(base * max(ratio, 1.0) * CONTEXT_MARGIN) + TEMPLATE_ALLOWANCE


def context_low_estimate(base: int, ratio: float) -> int:
    """The fewest tokens the prompt plausibly counts (the calibrated estimate less the margin): a
    model whose context this exceeds surely cannot take the request; between this and
    context_estimate it may, and only the upstream's own count can tell."""
    return math.floor(base * ratio / CONTEXT_MARGIN)


def cost_estimate(base: int, ratio: float) -> int:
    return max(1, round(base * ratio))
