"""The MCP client against deliberately odd servers: bad bodies, lost sessions, SSE framing."""

from __future__ import annotations

import json

import httpx
import pytest

from service.errors import ErrorKind, UpstreamError
from service.simulator.runner import ServerThread
from service.upstreams.mcp_client import McpClient, McpHttpError, McpProtocolError, McpRpcError
from service.upstreams.xpay import XpayAdapter
from tests.marketplaces.helpers import chat, route


class OddServer:
    """A scripted MCP-ish server: `script(message, headers)` returns (status, headers, body) per POST."""

    def __init__(self) -> None:
        self.script = None
        self.seen: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        request = json.loads(body) if body else {}
        self.seen.append({"message": request, "headers": headers})
        status, extra, payload = self.script(request, headers)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        raw_headers = [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": raw})


def initialize_answer(request, session="s-1", version="2025-06-18"):
    result = {"protocolVersion": version, "capabilities": {}, "serverInfo": {"name": "odd", "version": "1"}}
    headers = {"content-type": "application/json", "mcp-session-id": session}
    return 200, headers, {"jsonrpc": "2.0", "id": request["id"], "result": result}


def tool_answer(request, text):
    result = {"content": [{"type": "text", "text": text}], "isError": False}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


@pytest.fixture(scope="module")
def odd():
    server = OddServer()
    thread = ServerThread(server).start()
    yield server, thread.url + "/mcp?key=secret-key"
    thread.stop()


def handshake(request):
    """The scripted server's answer to initialize and to notifications; None for anything else."""
    if request.get("method") == "initialize":
        return initialize_answer(request)
    if "id" not in request:
        return 202, {}, b""
    return None


@pytest.fixture(autouse=True)
def _clear(odd):
    odd[0].seen.clear()


async def test_sse_answers_skip_notifications_and_priming_events(odd):
    server, url = odd

    def script(request, headers):
        if (reply := handshake(request)) is not None:
            return reply
        events = (
            b"id: 0\ndata:\n\n"
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n"
            b"event: message\r\ndata: " + json.dumps(tool_answer(request, "hello")).encode() + b"\r\n\r\n"
        )
        return 200, {"content-type": "text/event-stream"}, events

    server.script = script
    async with httpx.AsyncClient() as http:
        client = McpClient(http, url)
        result = await client.call_tool("any", {})
    assert result["content"][0]["text"] == "hello"
    assert server.seen[1]["message"]["method"] == "notifications/initialized"
    assert server.seen[2]["headers"]["mcp-session-id"] == "s-1"
    assert server.seen[2]["headers"]["mcp-protocol-version"] == "2025-06-18"
    assert "mcp-protocol-version" not in server.seen[0]["headers"]


async def test_missing_session_400_reinitializes_once(odd):
    server, url = odd
    calls = {"n": 0}

    def script(request, headers):
        if request.get("method") == "initialize":
            calls["n"] += 1
            return initialize_answer(request, session=f"s-{calls['n']}")
        if "id" not in request:
            return 202, {}, b""
        if headers.get("mcp-session-id") == "s-1":
            error = {"jsonrpc": "2.0", "id": "server-error",
                     "error": {"code": -32600, "message": "Bad Request: Missing session ID"}}
            return 400, {"content-type": "application/json"}, error
        return 200, {"content-type": "application/json"}, tool_answer(request, "ok")

    server.script = script
    async with httpx.AsyncClient() as http:
        client = McpClient(http, url)
        assert (await client.call_tool("t", {}))["content"][0]["text"] == "ok"
    assert calls["n"] == 2 and client.session_id == "s-2"


async def test_session_lost_twice_is_a_protocol_error(odd):
    server, url = odd

    def script(request, headers):
        if (reply := handshake(request)) is not None:
            return reply
        return 404, {"content-type": "application/json"}, {"error": "Session not found"}

    server.script = script
    async with httpx.AsyncClient() as http:
        with pytest.raises(McpProtocolError):
            await McpClient(http, url).call_tool("t", {})


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((200, {"content-type": "application/json"}, b"<html>not json</html>"), McpProtocolError),
        ((200, {"content-type": "text/event-stream"},
          b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n"), McpProtocolError),
        ((200, {"content-type": "application/json"}, {"jsonrpc": "2.0", "id": 999, "result": {}}), McpProtocolError),
        ((200, {"content-type": "application/json"},
          {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "bad"}}), McpRpcError),
        ((503, {"content-type": "text/html"}, b"<html>down</html>"), McpHttpError),
    ],
)
async def test_bad_answers_raise_typed_errors(odd, answer, error):
    server, url = odd

    def script(request, headers):
        if (reply := handshake(request)) is not None:
            return reply
        return answer

    server.script = script
    async with httpx.AsyncClient() as http:
        with pytest.raises(error) as caught:
            await McpClient(http, url).call_tool("t", {})
    assert "secret-key" not in str(caught.value)


async def test_unsupported_protocol_version_is_refused(odd):
    server, url = odd
    server.script = lambda request, headers: initialize_answer(request, version="1999-01-01")
    async with httpx.AsyncClient() as http:
        with pytest.raises(McpProtocolError):
            await McpClient(http, url).call_tool("t", {})


@pytest.mark.parametrize(
    ("text", "kind"),
    [("not json at all\n\nCost: $0.01 | Balance: $1.00 | xpay✦", ErrorKind.PROTOCOL),
     ('{"object": "something else"}', ErrorKind.PROTOCOL),
     ('{"error": {"code": 400, "message": "Validation: nope", "type": "Bad Request"}}', ErrorKind.INVALID_REQUEST)],
)
async def test_xpay_adapter_on_malformed_run_answers(odd, text, kind):
    server, url = odd

    def script(request, headers):
        if (reply := handshake(request)) is not None:
            return reply
        if request["params"]["name"] == "xpay_details":
            return 200, {"content-type": "application/json"}, tool_answer(request, "Schema unavailable")
        return 200, {"content-type": "application/json"}, tool_answer(request, text)

    server.script = script
    async with httpx.AsyncClient() as http:
        adapter = XpayAdapter(http, url.split("?")[0], "secret-key")
        with pytest.raises(UpstreamError) as caught:
            await adapter.complete(route("xpay"), chat())
    assert caught.value.kind is kind
    if "Cost:" in text:
        assert adapter.balance is not None
