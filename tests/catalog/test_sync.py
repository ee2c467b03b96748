"""catalog sync: Baseten's /v1/models merged into the catalog, recorded as a price version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import httpx

from service.catalog import sync
from service.catalog.loader import default_catalog_text, parse_catalog
from tests.cassettes import WARMUP, interaction
from tests.conftest import LiveGateway
from tests.support import acreate_tenant_with_key, fetch, gateway_env


def recorded_listing() -> dict:
    return json.loads(interaction(WARMUP)["response"]["body"])


def test_per_token_strings_become_exact_per_million_prices():
    assert sync.per_million("0.0000001") == "0.1"
    assert sync.per_million("0.000000145") == "0.145"
    assert sync.per_million("0.00000348") == "3.48"
    assert sync.per_million("0") == "0"
    assert sync.per_million(None) is None


def test_the_recorded_listing_matches_the_packaged_prices():
    current = json.loads(default_catalog_text())
    merged, report = sync.merge_listing(current, recorded_listing())
    price_changes = [line for line in report.changed if "per_mtok" in line]
    assert price_changes == []
    assert report.added == []
    assert "moonshotai/Kimi-K2.5" in report.unlisted  # seed 001's model, absent from the 2026-08 listing
    parse_catalog(merged)


def test_a_price_change_and_a_new_model_are_reported_and_loadable():
    listing = recorded_listing()
    entry = next(e for e in listing["data"] if e["id"] == "openai/gpt-oss-120b")
    entry["pricing"]["completion"] = "0.0000006"
    listing["data"].append({**entry, "id": "acme/new-model", "name": "New", "pricing": {
        "prompt": "0.0000002", "completion": "0.0000008", "image": "0", "request": "0"}})
    merged, report = sync.merge_listing(json.loads(default_catalog_text()), listing)
    assert report.added == ["acme/new-model"]
    assert "openai/gpt-oss-120b baseten output_per_mtok: 0.50 -> 0.6" in report.changed
    catalog = parse_catalog(merged)
    assert catalog.find_route("baseten", "openai/gpt-oss-120b").pricing.output_per_mtok == Decimal("0.6")
    assert catalog.find_route("baseten", "acme/new-model").pricing.input_per_mtok == Decimal("0.2")


async def test_recorded_version_is_what_the_next_gateway_serves(standins, database_url):
    listing = recorded_listing()
    next(e for e in listing["data"] if e["id"] == "openai/gpt-oss-120b")["pricing"]["prompt"] = "0.00000011"
    merged, _ = sync.merge_listing(json.loads(default_catalog_text()), listing)
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        version = await sync.record_version(conn, merged, __import__("datetime").datetime.now(
            __import__("datetime").UTC))
    finally:
        await conn.close()
    gw = LiveGateway(standins, database_url)
    try:
        tenant = await acreate_tenant_with_key(database_url)
        async with httpx.AsyncClient() as http:
            r = await http.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {tenant.key}"})
        body = r.json()
        assert body["price_version"] == version
        gpt = next(m for m in body["data"] if m["id"] == "openai/gpt-oss-120b")
        direct = next(x for x in gpt["routes"] if x["front_end"] == "baseten")
        assert direct["pricing"]["input_per_mtok"] == "0.11"
    finally:
        gw.stop()
        await fetch(database_url, "DELETE FROM price_versions WHERE version = $1", version)


def test_cli_sync_against_the_stand_in(standins, postgres, tmp_path):
    url = postgres.create_database()
    try:
        env = {**os.environ, **gateway_env(standins, url, tmp_path)}
        out = tmp_path / "merged.json"
        run = subprocess.run([sys.executable, "-m", "service", "catalog", "sync", "--output", str(out)],
                             env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert "recorded price version" in run.stdout or "nothing to record" in run.stdout
        assert parse_catalog(json.loads(out.read_text())).models
        again = subprocess.run([sys.executable, "-m", "service", "catalog", "sync", "--dry-run"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        # Synced once, the listing and the recorded version agree: nothing added or changed.
        assert not [line for line in again.stdout.splitlines() if line.startswith(("+ ", "~ "))]
    finally:
        postgres.drop_database(url)
