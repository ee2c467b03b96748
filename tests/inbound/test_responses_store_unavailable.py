"""Reading or deleting a stored response while the database cannot answer is a 503 the client
may retry, never a 500 or a false 404."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from service.api.responses import _with_store
from service.errors import GatewayError


class _BrokenPool:
    def acquire(self) -> _BrokenPool:
        return self

    async def __aenter__(self) -> None:
        raise OSError("connection refused")

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _never(conn: object, tenant_id: uuid.UUID, response_id: str) -> bool:
    raise AssertionError("no query without a connection")


@pytest.mark.parametrize("pool", [None, _BrokenPool()], ids=["no pool", "database away"])
async def test_a_stored_response_the_database_cannot_reach_is_a_503(pool):
    rt = SimpleNamespace(pool=pool)
    with pytest.raises(GatewayError) as caught:
        await _with_store(rt, uuid.uuid4(), "resp_x", _never)  # type: ignore[arg-type]
    assert caught.value.status == 503
    assert caught.value.wire_headers()["retry-after"] == "5"


async def test_the_query_gets_the_tenant_and_a_bounded_id():
    seen: list[tuple[uuid.UUID, str]] = []

    class _Pool:
        def acquire(self) -> _Pool:
            return self

        async def __aenter__(self) -> str:
            return "conn"

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def query(conn: object, tenant_id: uuid.UUID, response_id: str) -> bool:
        assert conn == "conn"
        seen.append((tenant_id, response_id))
        return True

    tenant = uuid.uuid4()
    assert await _with_store(SimpleNamespace(pool=_Pool()), tenant, "r" * 1000, query) is True  # type: ignore[arg-type]
    assert seen == [(tenant, "r" * 256)]
