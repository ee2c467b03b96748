"""Read the catalog data file (and an operator's override file) into a validated Catalog."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from service.catalog.model import (
    FRONT_ENDS,
    REASONING_MODES,
    Alias,
    Catalog,
    Features,
    Model,
    Pricing,
    Route,
)


class CatalogError(ValueError):
    pass


def default_catalog_text() -> str:
    return resources.files("service.catalog").joinpath("data/catalog.json").read_text("utf-8")


def load_catalog(path: Path | None = None, overrides: Path | None = None) -> Catalog:
    raw = json.loads(path.read_text("utf-8") if path else default_catalog_text())
    if overrides is not None:
        raw = merge_overrides(raw, json.loads(overrides.read_text("utf-8")))
    return parse_catalog(raw)


def merge_overrides(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """An operator's file replaces or adds whole entries: models by id, routes by (model, front end)."""
    merged = dict(base)
    models = {m["id"]: m for m in base.get("models", [])}
    for m in extra.get("models", []):
        models[m["id"]] = {**models.get(m["id"], {}), **m}
    routes = {(r["model"], r["front_end"]): r for r in base.get("routes", [])}
    for r in extra.get("routes", []):
        key = (r["model"], r["front_end"])
        if r.get("disabled"):
            routes.pop(key, None)
            continue
        routes[key] = {**routes.get(key, {}), **r}
    merged["models"] = list(models.values())
    merged["routes"] = list(routes.values())
    merged["pools"] = {**base.get("pools", {}), **extra.get("pools", {})}
    # An operator's aliases come first: they may refine or replace a packaged pattern.
    merged["aliases"] = [*extra.get("aliases", []), *base.get("aliases", [])]
    for field in ("version", "effective_from"):
        if field in extra:
            merged[field] = extra[field]
    return merged


def _money(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    if not isinstance(value, str):
        # Floats would already have lost exactness in the JSON parser.
        raise CatalogError(f"{where}: prices must be decimal strings, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CatalogError(f"{where}: not a decimal: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise CatalogError(f"{where}: price must be a non-negative finite decimal, got {value!r}")
    return number


def _pricing(raw: dict[str, Any], where: str) -> Pricing:
    kind = raw.get("kind")
    if kind not in ("per_token", "flat", "quoted", "unknown"):
        raise CatalogError(f"{where}: pricing.kind must be per_token, flat, quoted or unknown, got {kind!r}")
    pricing = Pricing(
        kind=kind,
        input_per_mtok=_money(raw.get("input_per_mtok"), where),
        output_per_mtok=_money(raw.get("output_per_mtok"), where),
        cached_input_per_mtok=_money(raw.get("cached_input_per_mtok"), where),
        per_call=_money(raw.get("per_call"), where),
    )
    if kind == "per_token" and (pricing.input_per_mtok is None or pricing.output_per_mtok is None):
        raise CatalogError(f"{where}: per_token pricing needs input_per_mtok and output_per_mtok")
    if kind == "flat" and pricing.per_call is None:
        raise CatalogError(f"{where}: flat pricing needs per_call")
    return pricing


def parse_catalog(raw: dict[str, Any]) -> Catalog:
    models: dict[str, Model] = {}
    for entry in raw.get("models", []):
        where = f"model {entry.get('id')!r}"
        f = entry.get("features", {})
        if f.get("reasoning", "none") not in REASONING_MODES:
            raise CatalogError(f"{where}: reasoning must be one of {REASONING_MODES}")
        context, max_out = int(entry["context_length"]), int(entry["max_output_tokens"])
        if context <= 0 or max_out <= 0:
            raise CatalogError(f"{where}: context_length and max_output_tokens must be positive")
        models[entry["id"]] = Model(
            id=entry["id"],
            name=entry.get("name", entry["id"]),
            context_length=context,
            max_output_tokens=max_out,
            features=Features(
                tools=bool(f.get("tools", True)),
                json_mode=bool(f.get("json_mode", False)),
                structured_outputs=bool(f.get("structured_outputs", False)),
                reasoning=f.get("reasoning", "none"),
                reasoning_efforts=tuple(f.get("reasoning_efforts", ())),
                vision=bool(f.get("vision", False)),
                tool_calling_recommended=bool(f.get("tool_calling_recommended", True)),
            ),
            sources=tuple(entry.get("sources", ())),
            note=entry.get("note"),
        )
    routes: list[Route] = []
    for entry in raw.get("routes", []):
        where = f"route {entry.get('front_end')}:{entry.get('model')}"
        if entry.get("model") not in models:
            raise CatalogError(f"{where}: unknown model")
        if entry.get("front_end") not in FRONT_ENDS:
            raise CatalogError(f"{where}: front_end must be one of {FRONT_ENDS}")
        routes.append(
            Route(
                model=entry["model"],
                front_end=entry["front_end"],
                pricing=_pricing(entry.get("pricing") or {}, where),
                streams=bool(entry.get("streams", False)),
                max_stop=int((entry.get("limits") or {}).get("max_stop", 32)),
            )
        )
    # A quoted route falls back to the same model's per-token prices when no quote can be had.
    direct = {r.model: r.pricing for r in routes if r.front_end == "baseten" and r.pricing.kind == "per_token"}
    routes = [
        Route(**{**_route_dict(r), "estimate": direct.get(r.model)}) if r.pricing.kind == "quoted" else r
        for r in routes
    ]
    by_model: dict[str, list[Route]] = {}
    for r in routes:
        by_model.setdefault(r.model, []).append(r)
    pools = {name: tuple(ids) for name, ids in (raw.get("pools") or {}).items()}
    for name, ids in pools.items():
        missing = [i for i in ids if i not in models]
        if missing:
            raise CatalogError(f"pool {name!r}: unknown models {missing}")
    aliases = _aliases(raw.get("aliases") or [], models, pools)
    return Catalog(
        version=str(raw.get("version", "unversioned")),
        effective_from=datetime.fromisoformat(str(raw.get("effective_from", "1970-01-01T00:00:00+00:00"))),
        models=models,
        routes=tuple(routes),
        pools=pools,
        aliases=aliases,
        by_model={k: tuple(v) for k, v in by_model.items()},
    )


def _aliases(raw: Any, models: dict[str, Model], pools: dict[str, tuple[str, ...]]) -> tuple[Alias, ...]:
    if not isinstance(raw, list):
        raise CatalogError("aliases must be a list of {match, to}")
    out = []
    for i, entry in enumerate(raw):
        if not (isinstance(entry, dict) and isinstance(entry.get("match"), str) and isinstance(entry.get("to"), str)):
            raise CatalogError(f"aliases[{i}] must be {{\"match\": <name or pattern>, \"to\": <model or pool>}}")
        if entry["to"] not in models and entry["to"] not in pools and entry["to"] != "auto":
            raise CatalogError(f"aliases[{i}]: {entry['to']!r} is neither a model nor a pool")
        out.append(Alias(entry["match"], entry["to"]))
    return tuple(out)


def _route_dict(r: Route) -> dict[str, Any]:
    return {
        "model": r.model,
        "front_end": r.front_end,
        "pricing": r.pricing,
        "streams": r.streams,
        "max_stop": r.max_stop,
    }
