"""POST /v1/responses (OpenAI's Responses API), GET and DELETE /v1/responses/{id}.

Codex CLI and the OpenAI Agents SDK speak this API; each request is translated to Chat Completions
(`service.inbound.responses_*`), routed, admitted, metered and billed exactly as a chat completion.
With `store: true` (OpenAI's default) the response and its conversation are kept for the tenant
(`SWITCHYARD_RESPONSES_RETENTION_DAYS`) so that `previous_response_id` continues it; they are
stored before the answer's last bytes leave, so a client may continue the moment it has them.
A tenant can never read, continue or delete another tenant's response.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import orjson
import structlog
from litestar import Response, delete, get, post
from litestar.params import FromPath
from litestar.response import Stream

from service.api.common import ApiRequest, authenticate, bearer_key, json_response, runtime
from service.api.inbound import Prepared, serve_with_litestar
from service.auth.principal import Principal
from service.chat.validate import validate_chat_request
from service.chat.validate_types import check_str
from service.db.pool import Conn
from service.errors import GatewayError
from service.gateway.context import RequestContext
from service.gateway.relay import usage_json
from service.inbound.responses_output import chat_to_response, conversation_items, new_response_id
from service.inbound.responses_request import ResponsesRequest, responses_to_chat
from service.inbound.responses_store import delete_response, load_response, save_response
from service.inbound.responses_stream import ResponsesStream
from service.upstreams.base import Usage

if TYPE_CHECKING:
    from service.runtime import Runtime

log = structlog.get_logger("switchyard.responses")

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
_T = TypeVar("_T")


class ResponsesEncoder:
    """The relay's encoder for a Responses stream; keeps the final Response for storage."""

    def __init__(self, request: ResponsesRequest, response_id: str, created_at: int) -> None:
        self.stream = ResponsesStream(request, response_id=response_id, created_at=created_at)

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return self.stream.feed(chunk)

    def end(self, usage: Usage | None, billed_usd: Decimal) -> bytes:
        tail = b""
        if usage is not None:
            tail = self.stream.feed({"choices": [], "usage": usage_json(usage, billed_usd)})
        return tail + self.stream.close()

    def fail(self, err: GatewayError) -> bytes:
        return self.stream.error(err.message, err.code or "server_error")


def _unavailable() -> GatewayError:
    return GatewayError(503, "Stored responses cannot be read right now (the database is unavailable); retry "
                        "shortly.", type="server_error", code="database_unavailable", headers={"retry-after": "5"})


async def _with_store(rt: Runtime, tenant_id: uuid.UUID, response_id: str,
                      query: Callable[[Conn, uuid.UUID, str], Awaitable[_T]]) -> _T:
    """One stored-response query for this tenant, or a 503 when the database cannot answer."""
    if rt.pool is None:
        raise _unavailable()
    try:
        async with rt.pool.acquire() as conn:
            return await query(conn, tenant_id, response_id[:256])
    except _DB_ERRORS as exc:
        raise _unavailable() from exc


class ResponsesEndpoint:
    api = "responses"
    stream_content_type = b"text/event-stream; charset=utf-8"

    def credentials(self, headers: Mapping[str, str]) -> str:
        return bearer_key(headers.get("authorization"))

    async def prepare(self, rt: Runtime, principal: Principal, body: object) -> Prepared:
        history = await _history(rt, principal, body)
        request = responses_to_chat(body, history=history)
        view = validate_chat_request(request.chat)
        response_id, created_at = new_response_id(), int(time.time())
        encoders: list[ResponsesEncoder] = []

        def answer(completion: dict[str, Any]) -> dict[str, Any]:
            return chat_to_response(completion, request=request, response_id=response_id, created_at=created_at)

        def encoder(_ctx: RequestContext) -> ResponsesEncoder:
            made = ResponsesEncoder(request, response_id, created_at)
            encoders.append(made)
            return made

        async def store(ctx: RequestContext, response: dict[str, Any] | None) -> None:
            if response is None and encoders:
                response = encoders[0].stream.response
            if response is not None:
                await _store(rt, ctx, request, response)

        return Prepared(chat=request.chat, view=view, answer=answer, encoder=encoder,
                        after=store if request.store else None)

    def render_error(self, err: GatewayError) -> tuple[int, bytes, dict[str, str]]:
        return err.status, err.encoded(), err.wire_headers()


RESPONSES = ResponsesEndpoint()


@post("/v1/responses", status_code=200)
async def create_response(request: ApiRequest) -> Response[bytes] | Stream:
    return await serve_with_litestar(request, RESPONSES)


async def _history(rt: Runtime, principal: Principal, body: object) -> list[dict[str, Any]] | None:
    previous = body.get("previous_response_id") if isinstance(body, dict) else None
    if not isinstance(previous, str) or not previous:
        return None
    # An id the database cannot hold (a NUL) is a bad request, not a lookup.
    check_str(previous, "previous_response_id", max_len=256, stored=True)
    stored = await _with_store(rt, principal.tenant_id, previous, load_response)
    return stored.conversation if stored is not None else None


async def _store(rt: Runtime, ctx: RequestContext, request: ResponsesRequest, response: dict[str, Any]) -> None:
    """Keep a stored response; a database that cannot take it costs the client its continuation,
    never its answer (which is billed either way)."""
    if rt.pool is None:
        log.warning("response_not_stored", request_id=ctx.request_id, reason="database_unavailable")
        return
    try:
        async with rt.pool.acquire(timeout=2) as conn:
            await save_response(conn, tenant_id=ctx.principal.tenant_id, response=response,
                                conversation=conversation_items(request, response),
                                retention=timedelta(days=rt.settings.responses_retention_days))
    except _DB_ERRORS as exc:
        log.warning("response_not_stored", request_id=ctx.request_id, error=type(exc).__name__)


def _not_found(response_id: str) -> GatewayError:
    return GatewayError(404, f"No response found with id '{response_id[:128]}'.", type="invalid_request_error",
                        code="not_found", param="response_id", headers={"x-should-retry": "false"})


@get("/v1/responses/{response_id:str}")
async def get_response(request: ApiRequest, response_id: FromPath[str]) -> Response[bytes]:
    principal = await authenticate(request)
    stored = await _with_store(runtime(request), principal.tenant_id, response_id, load_response)
    if stored is None:
        raise _not_found(response_id)
    return Response(content=orjson.dumps(stored.response), media_type="application/json")


@delete("/v1/responses/{response_id:str}", status_code=200)
async def remove_response(request: ApiRequest, response_id: FromPath[str]) -> Response[bytes]:
    principal = await authenticate(request)
    deleted = await _with_store(runtime(request), principal.tenant_id, response_id, delete_response)
    if not deleted:
        raise _not_found(response_id)
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})
