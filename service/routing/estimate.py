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
from dataclasses import dataclass

import orjson

IMAGE_TOKENS = 1_500
CONTEXT_MARGIN = 1.10
# Chat templates add tokens the JSON does not show (gpt-oss's adds about 43 to a one-tool request);
# the ratio learned per model cannot express a fixed overhead, so the context check adds one.
TEMPLATE_ALLOWANCE = 64
DEFAULT_MAX_OUTPUT = 4_096  # Baseten's default max_tokens
PRIOR_OUTPUT = 256
_EMA = 0.05


@dataclass(slots=True)
class _Stats:
    prompt_ratio: float = 1.0
    output_tokens: float = PRIOR_OUTPUT
    samples: int = 0


class Calibration:
    """Per-model running ratios, learned from every upstream usage report (process-local:
    losing it costs a little accuracy, never correctness)."""

    def __init__(self) -> None:
        self._stats: dict[str, _Stats] = {}
        self._lock = threading.Lock()

    def prompt_ratio(self, model: str) -> float:
        stats = self._stats.get(model)
        return stats.prompt_ratio if stats else 1.0

    def expected_output(self, model: str, requested_max: int | None) -> int:
        stats = self._stats.get(model)
        expected = stats.output_tokens if stats else PRIOR_OUTPUT
        if requested_max is not None:
            expected = min(expected, requested_max)
        return max(1, int(expected))

    def observe(self, model: str, estimated_prompt: int, prompt_tokens: int, completion_tokens: int) -> None:
        if estimated_prompt <= 0 or prompt_tokens <= 0:
            return
        ratio = prompt_tokens / estimated_prompt
        with self._lock:
            stats = self._stats.setdefault(model, _Stats())
            # Learn fast at first, then settle into a moving average.
            weight = max(_EMA, 1.0 / (stats.samples + 1))
            stats.prompt_ratio += weight * (ratio - stats.prompt_ratio)
            stats.output_tokens += weight * (completion_tokens - stats.output_tokens)
            stats.samples += 1


def base_prompt_estimate(body: dict, image_parts: int) -> int:
    messages = body.get("messages") or []
    chars = len(orjson.dumps(messages))
    tools = body.get("tools")
    if tools:
        chars += len(orjson.dumps(tools))
    return math.ceil(chars / 4) + image_parts * IMAGE_TOKENS


def context_estimate(base: int, ratio: float) -> int:
    """Conservative: never below the raw estimate, plus a margin and the template's overhead."""
    return math.ceil(base * max(ratio, 1.0) * CONTEXT_MARGIN) + TEMPLATE_ALLOWANCE


def cost_estimate(base: int, ratio: float) -> int:
    return max(1, round(base * ratio))
