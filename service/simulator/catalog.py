"""Load the stand-ins' model list: Baseten's recorded /v1/models entries plus fake-only behaviour keys."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from service.simulator.engine import FakeModel

REASONING_MODES = ("default_on", "opt_in", "none", "always_on")
STREAM_STYLES = ("nulls", "sparse")


def _text(path: Path | None) -> str:
    if path is not None:
        return path.read_text("utf-8")
    return resources.files("service.simulator").joinpath("data/baseten_models.json").read_text("utf-8")


def fake_model(entry: dict[str, Any]) -> FakeModel:
    """One catalog entry as a FakeModel; the `fake` object holds what Baseten's listing never shows."""
    fake = entry.get("fake") or {}
    reasons = "reasoning" in entry.get("supported_features", ())
    mode = fake.get("reasoning_mode", "default_on" if reasons else "none")
    style = fake.get("stream_style", "nulls")
    if mode not in REASONING_MODES:
        raise ValueError(f"model {entry.get('id')!r}: reasoning_mode must be one of {REASONING_MODES}")
    if style not in STREAM_STYLES:
        raise ValueError(f"model {entry.get('id')!r}: stream_style must be one of {STREAM_STYLES}")
    listing = {k: v for k, v in entry.items() if k != "fake"}
    return FakeModel(
        id=entry["id"],
        context_length=int(entry["context_length"]),
        max_completion_tokens=int(entry["max_completion_tokens"]),
        pricing=dict(entry["pricing"]),
        supported_features=tuple(entry.get("supported_features", ())),
        input_modalities=tuple(entry.get("input_modalities", ("text",))),
        reasoning_mode=mode,
        allowed_efforts=tuple(fake.get("allowed_efforts", ())),
        stream_style=style,
        reasoning_tokens_reported=bool(fake.get("reasoning_tokens_reported", True)),
        entry=listing,
    )


def load_fake_catalog(path: Path | None = None) -> dict[str, FakeModel]:
    raw = json.loads(_text(path))
    entries = raw["data"] if isinstance(raw, dict) else raw
    return {entry["id"]: fake_model(entry) for entry in entries}
