"""Attribution through a live gateway: what the client names lands on its usage rows and rollups."""

from __future__ import annotations

import asyncio
import json
import uuid

import openai
import pytest

from tests.support import fetch, wait_for_rows

MODEL = "openai/gpt-oss-120b"
BASETEN = {"provider": {"only": ["baseten"]}}
HELLO = [{"role": "user", "content": "Say hello."}]


def _project_key(admin) -> tuple[dict, dict, dict]:
    tenant = admin.post("/admin/tenants", json={"name": f"attr-{uuid.uuid4().hex[:8]}"}).json()
    project = admin.post(f"/admin/tenants/{tenant['id']}/projects", json={"name": "search"}).json()
    key = admin.post(f"/admin/tenants/{tenant['id']}/keys", json={"project_id": "search"}).json()
    assert key["project_id"] == project["id"]
    return tenant, project, key


def test_user_tags_and_metadata_are_stored_on_every_row_streamed_or_not(gateway, admin, database_url):
    tenant, project, key = _project_key(admin)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key["key"], max_retries=0, timeout=20)
    try:
        client.chat.completions.create(
            model=MODEL, messages=HELLO, user="end-user-7",
            metadata={"tags": ["search", "beta"], "team": "core"},  # type: ignore[dict-item]
            extra_headers={"x-switchyard-tags": "beta, nightly"}, extra_body=BASETEN)
        chunks = client.chat.completions.create(
            model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True},
            metadata={"tags": "canary", "ticket": "T-9"}, extra_body=BASETEN)
        assert any(c.usage for c in chunks)
        client.chat.completions.create(model=MODEL, messages=HELLO, extra_body=BASETEN)
    finally:
        client.close()
    rows = asyncio.run(wait_for_rows(
        database_url, "SELECT * FROM usage_events WHERE tenant_id = $1 ORDER BY started_at", 3,
        uuid.UUID(tenant["id"])))
    got = [(r["end_user"], list(r["tags"]), json.loads(r["metadata"]) if r["metadata"] else None) for r in rows]
    assert got == [("end-user-7", ["search", "beta", "nightly"], {"team": "core"}),
                   (None, ["canary"], {"ticket": "T-9"}),
                   (None, [], None)]
    assert {r["project_id"] for r in rows} == {uuid.UUID(project["id"])}
    assert {r["key_id"] for r in rows} == {uuid.UUID(key["id"])}
    # The per-tag rollup was written with the ledger: each tag once, untagged under ''.
    tags = asyncio.run(fetch(database_url, "SELECT tag, sum(attempts) AS n FROM usage_daily_tags WHERE tenant_id = $1"
                                           " GROUP BY tag ORDER BY tag", uuid.UUID(tenant["id"])))
    assert [(r["tag"], r["n"]) for r in tags] == [("", 1), ("beta", 1), ("canary", 1), ("nightly", 1), ("search", 1)]
    daily = asyncio.run(fetch(database_url, "SELECT project_id, key_id, attempts FROM usage_daily WHERE tenant_id = $1",
                              uuid.UUID(tenant["id"])))
    assert [(r["project_id"], r["key_id"], r["attempts"]) for r in daily] == [
        (uuid.UUID(project["id"]), uuid.UUID(key["id"]), 3)]


@pytest.mark.parametrize(("extra", "headers", "param"), [
    ({"user": "u" * 257}, {}, "user"),
    ({"metadata": {"tags": [f"t{i}" for i in range(17)]}}, {}, "metadata.tags"),
    ({"metadata": {"tags": ["x" * 65]}}, {}, "metadata.tags"),
    ({}, {"x-switchyard-tags": ",".join(f"t{i}" for i in range(17))}, "x-switchyard-tags"),
    ({"metadata": {"note": "n" * 513}}, {}, "metadata.note"),
])
def test_over_a_bound_is_a_400_naming_the_field_and_nothing_is_metered(gateway, admin, database_url, extra,
                                                                        headers, param):
    tenant, _, key = _project_key(admin)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key["key"], max_retries=0, timeout=20)
    try:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=MODEL, messages=HELLO, extra_headers=headers,
                                           extra_body={**BASETEN, **extra})
    finally:
        client.close()
    assert info.value.body["param"] == param
    rows = asyncio.run(fetch(database_url, "SELECT 1 FROM usage_events WHERE tenant_id = $1", uuid.UUID(tenant["id"])))
    assert rows == []
