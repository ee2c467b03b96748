"""`switchyard catalog sync`: refresh the catalog from Baseten's GET /v1/models.

/v1/models is Baseten's source of truth for prices (USD per token, as decimal strings), context
and output limits, and features. Sync merges it into the current catalog, describes every
difference, and records the result as a new price version with an effective date; the gateway
loads the newest effective version at start. Models the listing no longer names are reported,
not removed: an operator decides that in an override file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from service.catalog.loader import parse_catalog
from service.db.pool import Db

MILLION = Decimal(1_000_000)


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # human-readable lines
    unlisted: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed)

    def lines(self) -> list[str]:
        out = [f"+ {m}" for m in self.added] + [f"~ {c}" for c in self.changed]
        out += [f"? {m} is in the catalog but not in Baseten's listing" for m in self.unlisted]
        return out or ["no differences"]


def per_million(per_token: Any) -> str | None:
    """Baseten's per-token decimal string as the catalog's per-million string, exactly."""
    if per_token in (None, ""):
        return None
    value = Decimal(str(per_token)) * MILLION
    return format(value.normalize(), "f") if value != 0 else "0"


def _same_price(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return Decimal(a) == Decimal(b)


def merge_listing(raw: dict[str, Any], listing: dict[str, Any]) -> tuple[dict[str, Any], SyncReport]:
    """The catalog with Baseten's listing merged in, and what changed."""
    catalog = json.loads(json.dumps(raw))  # a deep copy that stays JSON
    report = SyncReport()
    models = {m["id"]: m for m in catalog["models"]}
    routes = {(r["model"], r["front_end"]): r for r in catalog["routes"]}
    listed = set()
    for entry in listing.get("data", []):
        model_id = entry.get("id")
        if not isinstance(model_id, str):
            continue
        listed.add(model_id)
        features = set(entry.get("supported_features") or [])
        vision = "image" in (entry.get("input_modalities") or [])
        pricing = entry.get("pricing") or {}
        price = {
            "kind": "per_token",
            "input_per_mtok": per_million(pricing.get("prompt")),
            "output_per_mtok": per_million(pricing.get("completion")),
        }
        if (cached := per_million(pricing.get("input_cache_read"))) is not None:
            price["cached_input_per_mtok"] = cached
        if price["input_per_mtok"] is None or price["output_per_mtok"] is None:
            price = {"kind": "unknown"}
        model = models.get(model_id)
        if model is None:
            models[model_id] = {
                "id": model_id,
                "name": entry.get("name") or model_id,
                "context_length": int(entry["context_length"]),
                "max_output_tokens": int(entry.get("max_completion_tokens") or entry["context_length"]),
                "features": {
                    "tools": "tools" in features,
                    "json_mode": "json_mode" in features,
                    "structured_outputs": "structured_outputs" in features,
                    "reasoning": "opt_in" if "reasoning" in features else "none",
                    "reasoning_efforts": ["low", "medium", "high"] if "reasoning_effort" in features else [],
                    "vision": vision,
                    "tool_calling_recommended": True,
                },
                "sources": ["baseten /v1/models"],
            }
            report.added.append(model_id)
        else:
            _update_model(model, entry, features, vision, report)
        route = routes.get((model_id, "baseten"))
        if route is None:
            routes[(model_id, "baseten")] = {"model": model_id, "front_end": "baseten", "pricing": price,
                                              "streams": True, "limits": {"max_stop": 32}}
        else:
            old = route.get("pricing") or {}
            for key in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok"):
                if not _same_price(old.get(key), price.get(key)) and (old.get(key) or price.get(key)):
                    report.changed.append(f"{model_id} baseten {key}: {old.get(key)} -> {price.get(key)}")
            kind_changed = old.get("kind") != price["kind"] and not (
                old.get("kind") == "unknown" and price["kind"] == "unknown")
            if kind_changed and not any(line.startswith(f"{model_id} baseten ") for line in report.changed):
                report.changed.append(f"{model_id} baseten pricing: {old.get('kind')} -> {price['kind']}")
            route["pricing"] = price
    report.unlisted = sorted(m for m in models if m not in listed)
    catalog["models"] = list(models.values())
    catalog["routes"] = list(routes.values())
    parse_catalog(catalog)  # the merged catalog must load, or nothing is recorded
    return catalog, report


def _update_model(model: dict[str, Any], entry: dict[str, Any], features: set[str], vision: bool,
                  report: SyncReport) -> None:
    mid = model["id"]
    for key, new in (("context_length", entry.get("context_length")),
                     ("max_output_tokens", entry.get("max_completion_tokens"))):
        if isinstance(new, int) and new > 0 and new != model.get(key):
            report.changed.append(f"{mid} {key}: {model.get(key)} -> {new}")
            model[key] = new
    f = model.setdefault("features", {})
    for name in ("tools", "json_mode", "structured_outputs"):
        if name in features and not f.get(name):
            report.changed.append(f"{mid} {name}: false -> true")
            f[name] = True
    if "reasoning" in features and f.get("reasoning", "none") == "none":
        report.changed.append(f"{mid} reasoning: none -> opt_in")
        f["reasoning"] = "opt_in"
    if vision and not f.get("vision"):
        report.changed.append(f"{mid} vision: false -> true")
        f["vision"] = True


def new_version(catalog: dict[str, Any], now: datetime | None = None) -> tuple[str, datetime]:
    now = now or datetime.now(UTC)
    digest = hashlib.sha256(json.dumps(catalog, sort_keys=True).encode()).hexdigest()[:8]
    return f"{now:%Y-%m-%d}.{digest}", now


async def record_version(conn: Db, catalog: dict[str, Any], effective_from: datetime) -> str:
    version, _ = new_version(catalog, effective_from)
    catalog = {**catalog, "version": version, "effective_from": effective_from.isoformat()}
    await conn.execute(
        "INSERT INTO price_versions (version, effective_from, catalog) VALUES ($1, $2, $3::jsonb)"
        " ON CONFLICT (version) DO NOTHING",
        version, effective_from, json.dumps(catalog),
    )
    return version


async def latest_version(conn: Db) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT catalog FROM price_versions WHERE effective_from <= now() ORDER BY effective_from DESC LIMIT 1"
    )
    if row is None:
        return None
    catalog: dict[str, Any] = json.loads(row["catalog"])
    return catalog
