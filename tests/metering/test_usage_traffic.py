"""Real traffic through the gateway shows up in the caller's /v1/usage and export, and nowhere else."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import openai

from tests.support import create_tenant_with_key, fetch, wait_for_rows

MODEL = "openai/gpt-oss-120b"


def test_traffic_is_reflected_in_the_tenants_usage(gateway, database_url):
    caller = create_tenant_with_key(database_url, markup="0.5")
    bystander = create_tenant_with_key(database_url)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=caller.key, max_retries=0, timeout=20)
    try:
        answers = [client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Hi {n}"}],
            extra_body={"provider": {"only": ["baseten"]}}) for n in range(2)]
    finally:
        client.close()
    rows = asyncio.run(wait_for_rows(database_url, "SELECT * FROM usage_events WHERE tenant_id = $1", 2,
                                     caller.tenant_id))
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)

    today = datetime.now(UTC).date().isoformat()
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        usage = http.get("/v1/usage", headers={"authorization": f"Bearer {caller.key}"}).json()
        assert [(r["day"], r["model"], r["front_end"]) for r in usage["data"]] == [(today, MODEL, "baseten")]
        row = usage["data"][0]
        assert row["requests"] == 2 and row["attempts"] == 2
        assert row["prompt_tokens"] == sum(a.usage.prompt_tokens for a in answers)
        assert row["completion_tokens"] == sum(a.usage.completion_tokens for a in answers)
        billed = sum((r["billed_usd"] for r in rows), Decimal(0))
        provider = sum((r["provider_cost_usd"] for r in rows), Decimal(0))
        assert Decimal(row["cost_usd"]) == billed > provider > 0  # the tenant sees its marked-up price
        assert usage["total"]["cost_usd"] == row["cost_usd"]

        exported = list(csv.DictReader(io.StringIO(
            http.get("/v1/usage/export", headers={"authorization": f"Bearer {caller.key}"}).text)))
        assert sorted(r["request_id"] for r in exported) == sorted(r["request_id"] for r in rows)

        # The other tenant sees none of it, by summary or by export.
        other = http.get("/v1/usage", headers={"authorization": f"Bearer {bystander.key}"}).json()
        assert other["data"] == [] and other["total"]["requests"] == 0
        other_export = http.get("/v1/usage/export", params={"format": "jsonl"},
                                headers={"authorization": f"Bearer {bystander.key}"})
        assert other_export.status_code == 200 and other_export.text == ""
    stored = asyncio.run(fetch(database_url, "SELECT count(*) AS n FROM usage_events WHERE tenant_id = $1",
                               bystander.tenant_id))
    assert stored[0]["n"] == 0
