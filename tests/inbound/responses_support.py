"""Test plumbing for the Responses adapter: chat answers as Baseten-shaped chunks, SSE parsing, and a
recording `/v1/responses` server that answers through the adapter itself."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from service.errors import GatewayError
from service.inbound.responses_output import chat_to_response, new_response_id
from service.inbound.responses_request import responses_to_chat
from service.inbound.responses_stream import ResponsesStream

SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "cookie", "openai-api-key"})


def completion(
    *,
    content: str | None = None,
    reasoning: str | None = None,
    tool_calls: list[tuple[str, str, str]] | None = None,  # (id, name, arguments)
    finish_reason: str = "stop",
    model: str = "moonshotai/Kimi-K2.6",
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole Chat Completions answer in Baseten's shape."""
    message: dict[str, Any] = {"role": "assistant"}
    if content is not None:
        message["content"] = content
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in tool_calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1780264605,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage
        or {
            "prompt_tokens": 13,
            "completion_tokens": 7,
            "total_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 3},
            "completion_tokens_details": {"reasoning_tokens": 2},
            "cost": 0.00042,
        },
    }


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or []


def completion_to_chunks(answer: dict[str, Any], size: int = 3) -> list[dict[str, Any]]:
    """The stream Baseten would send for `answer`: role chunk, reasoning and content deltas, tool
    calls (id and name first, then argument fragments), the finish chunk, the usage-only chunk."""
    base = {
        "id": answer["id"],
        "object": "chat.completion.chunk",
        "created": answer["created"],
        "model": answer["model"],
    }
    choice = answer["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None}

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"reasoning_content": p}) for p in pieces(message.get("reasoning_content") or "", size)]
    out += [chunk({"content": p}) for p in pieces(message.get("content") or "", size)]
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": function["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        for fragment in pieces(function["arguments"], size):
            out.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": None, "arguments": fragment},
                            }
                        ]
                    }
                )
            )
    out.append(chunk({}, choice["finish_reason"]))
    out.append({**base, "choices": [], "usage": answer["usage"]})
    return out


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event, checking the name matches the data's type."""
    events = []
    for block in raw.decode("utf-8").split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ") and len(lines) == 2, block
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        events.append((name, data))
    return events


def stream_bytes(
    request_body: dict[str, Any], answer: dict[str, Any], *, response_id: str, created_at: int = 1
) -> bytes:
    request = responses_to_chat(request_body, history=None)
    stream = ResponsesStream(request, response_id=response_id, created_at=created_at)
    out = b"".join(stream.feed(c) for c in completion_to_chunks(answer))
    return out + stream.close()


Script = Callable[[dict[str, Any], int], dict[str, Any]]


class Recorder:
    """A loopback `/v1/responses` server that records each request and answers with the chat
    completion `script(body, turn)` returns, translated by the adapter under test (streamed or not,
    as the client asked). A body the adapter refuses gets its 400, as the gateway would send."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                recorder._record(self, None)
                self._send(
                    404, "application/json", b'{"error":{"message":"not found","type":"not_found_error"}}'
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                recorder._record(self, body)
                status, content_type, payload = recorder._answer(self.path, body)
                self._send(status, content_type, payload)

            def _send(self, status: int, content_type: str, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        headers = {
            k.lower(): ("<redacted>" if k.lower() in SECRET_HEADERS else v)
            for k, v in handler.headers.items()
        }
        self.requests.append(
            {"method": handler.command, "path": handler.path, "headers": headers, "body": body}
        )

    def _answer(self, path: str, body: Any) -> tuple[int, str, bytes]:
        if not path.split("?")[0].endswith("/responses"):
            return 404, "application/json", b'{"error":{"message":"not found","type":"not_found_error"}}'
        try:
            request = responses_to_chat(body, history=None)
        except GatewayError as err:
            self.errors.append(err.body())
            return err.status, "application/json", err.encoded()
        answer = self.script(body, sum(1 for r in self.requests if r["method"] == "POST") - 1)
        response_id = new_response_id()
        if not request.stream:
            response = chat_to_response(
                answer, request=request, response_id=response_id, created_at=1780264605
            )
            return 200, "application/json", json.dumps(response).encode()
        stream = ResponsesStream(request, response_id=response_id, created_at=1780264605)
        out = b"".join(stream.feed(c) for c in completion_to_chunks(answer))
        return 200, "text/event-stream", out + stream.close()

    def posts(self) -> Iterator[dict[str, Any]]:
        return (r for r in self.requests if r["method"] == "POST")
