"""Stored responses against real Postgres, with the real migrations applied."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from service.inbound.responses_output import chat_to_response, conversation_items, new_response_id
from service.inbound.responses_request import responses_to_chat
from service.inbound.responses_store import delete_response, load_response, purge_expired, save_response
from tests.inbound.responses_support import completion
from tests.support import acreate_tenant_with_key

DAY = timedelta(days=1)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def tenants(database_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    first = await acreate_tenant_with_key(database_url)
    second = await acreate_tenant_with_key(database_url)
    return first.tenant_id, second.tenant_id


def turn(text: str = "Hi") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    request = responses_to_chat({"model": "moonshotai/Kimi-K2.6", "input": text}, history=None)
    response = chat_to_response(
        completion(content="Hello", reasoning="Greet."),
        request=request,
        response_id=new_response_id(),
        created_at=1780264605,
    )
    return response, conversation_items(request, response)


async def expire(conn: asyncpg.Connection, response_id: str) -> None:
    await conn.execute(
        "UPDATE stored_responses SET created_at = now() - interval '2 days',"
        " expires_at = now() - interval '1 second' WHERE id = $1",
        response_id,
    )


async def test_saved_response_loads_for_its_tenant_only(
    conn: asyncpg.Connection, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    owner, other = tenants
    response, conversation = turn()
    await save_response(conn, tenant_id=owner, response=response, conversation=conversation, retention=DAY)
    stored = await load_response(conn, owner, response["id"])
    assert stored is not None
    assert (stored.id, stored.tenant_id, stored.model) == (response["id"], owner, "moonshotai/Kimi-K2.6")
    assert stored.response == response and stored.conversation == conversation
    assert stored.expires_at - stored.created_at == DAY
    assert await load_response(conn, other, response["id"]) is None
    assert await load_response(conn, owner, "resp_unknown") is None


async def test_another_tenant_cannot_delete(
    conn: asyncpg.Connection, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    owner, other = tenants
    response, conversation = turn()
    await save_response(conn, tenant_id=owner, response=response, conversation=conversation, retention=DAY)
    assert await delete_response(conn, other, response["id"]) is False
    assert await load_response(conn, owner, response["id"]) is not None
    assert await delete_response(conn, owner, response["id"]) is True
    assert await load_response(conn, owner, response["id"]) is None
    assert await delete_response(conn, owner, response["id"]) is False


async def test_expired_response_is_gone(
    conn: asyncpg.Connection, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    owner, _ = tenants
    response, conversation = turn()
    await save_response(conn, tenant_id=owner, response=response, conversation=conversation, retention=DAY)
    await expire(conn, response["id"])
    assert await load_response(conn, owner, response["id"]) is None
    # Deleting an expired response removes the row but answers as for a missing one.
    assert await delete_response(conn, owner, response["id"]) is False
    assert await conn.fetchval("SELECT count(*) FROM stored_responses WHERE id = $1", response["id"]) == 0


async def test_purge_removes_expired_rows_in_batches(
    conn: asyncpg.Connection, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    owner, other = tenants
    while await purge_expired(conn, 1000):
        pass  # earlier tests' leftovers
    expired, live = [], []
    for n in range(5):
        response, conversation = turn(f"old {n}")
        await save_response(
            conn,
            tenant_id=owner if n % 2 else other,
            response=response,
            conversation=conversation,
            retention=DAY,
        )
        await expire(conn, response["id"])
        expired.append(response["id"])
    for n in range(2):
        response, conversation = turn(f"new {n}")
        await save_response(
            conn, tenant_id=owner, response=response, conversation=conversation, retention=DAY
        )
        live.append(response["id"])
    assert await purge_expired(conn, 3) == 3
    assert await purge_expired(conn, 3) == 2
    assert await purge_expired(conn, 3) == 0
    left = {
        r["id"]
        for r in await conn.fetch("SELECT id FROM stored_responses WHERE id = ANY($1)", expired + live)
    }
    assert left == set(live)


async def test_tenant_deletion_removes_its_responses(
    conn: asyncpg.Connection, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    owner, _ = tenants
    response, conversation = turn()
    await save_response(conn, tenant_id=owner, response=response, conversation=conversation, retention=DAY)
    await conn.execute("DELETE FROM api_keys WHERE tenant_id = $1", owner)
    await conn.execute("DELETE FROM tenants WHERE id = $1", owner)
    assert await conn.fetchval("SELECT count(*) FROM stored_responses WHERE id = $1", response["id"]) == 0


async def test_ids_are_unique_and_retention_positive(
    conn: asyncpg.Connection, tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    owner, other = tenants
    response, conversation = turn()
    await save_response(conn, tenant_id=owner, response=response, conversation=conversation, retention=DAY)
    with pytest.raises(asyncpg.UniqueViolationError):
        await save_response(
            conn, tenant_id=other, response=response, conversation=conversation, retention=DAY
        )
    with pytest.raises(ValueError, match="retention must be positive"):
        await save_response(
            conn,
            tenant_id=owner,
            response={**response, "id": new_response_id()},
            conversation=conversation,
            retention=timedelta(0),
        )


async def test_migration_indexes(conn: asyncpg.Connection) -> None:
    indexes = {
        r["indexname"]: r["indexdef"]
        for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'stored_responses'"
        )
    }
    assert "(tenant_id, created_at DESC)" in indexes["ix_stored_responses_tenant_created"]
    assert "(expires_at)" in indexes["ix_stored_responses_expires_at"]
    assert "(id)" in indexes["stored_responses_pkey"]
