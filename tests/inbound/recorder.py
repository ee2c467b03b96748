"""A stand-in for Anthropic's API that records every request a real client makes.

Used by hand to capture what Claude Code and the `anthropic` SDKs send (the fixtures under
`fixtures/` came from it), never by the test suite:

    python -m tests.inbound.recorder --port 8787 --out /tmp/requests.jsonl

Each request is appended as one JSON line (method, path with query, headers with secrets
redacted, decoded body). `/v1/messages` answers a minimal valid message, streamed when asked;
`/v1/messages/count_tokens` answers a fixed count; anything else answers 404 in Anthropic's shape.
With `--tool NAME --tool-input JSON`, a streamed turn whose last message holds no `tool_result`
is answered with a thinking block and a call of that tool instead, so the client's next request
carries a tool round trip.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "cookie", "proxy-authorization"})
_REPLY_TEXT = "hi"


def _sse(event: str, data: dict[str, object]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _message(model: str, text: str, output_tokens: int) -> dict[str, object]:
    return {
        "id": "msg_recorder0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": "end_turn" if text else None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": output_tokens},
    }


def streamed_tool_call(model: str, name: str, tool_input: dict[str, object]) -> bytes:
    """A streamed answer that thinks, then calls one tool."""
    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    call = {"type": "tool_use", "id": "toolu_recorder01", "name": name, "input": {}}
    return b"".join(
        [
            _sse("message_start", {"type": "message_start", "message": _message(model, "", 1)}),
            _sse(
                "content_block_start", {"type": "content_block_start", "index": 0, "content_block": thinking}
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "I should look at the file first."},
                },
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": call}),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(tool_input)},
                },
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 20},
                },
            ),
            _sse("message_stop", {"type": "message_stop"}),
        ]
    )


def _answers_tool_result(request: dict[str, object]) -> bool:
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return False
    content = messages[-1].get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def streamed_answer(model: str) -> bytes:
    """The shortest event sequence Anthropic's SDKs accept as a whole message."""
    return b"".join(
        [
            _sse("message_start", {"type": "message_start", "message": _message(model, "", 1)}),
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            _sse("ping", {"type": "ping"}),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": _REPLY_TEXT},
                },
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 2},
                },
            ),
            _sse("message_stop", {"type": "message_stop"}),
        ]
    )


class _Recorder(BaseHTTPRequestHandler):
    out: Path
    tool: str | None = None
    tool_input: ClassVar[dict[str, object]] = {}
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        return

    def _record(self) -> object:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: object = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {
            name.lower(): ("<redacted>" if name.lower() in _SECRET_HEADERS else value)
            for name, value in self.headers.items()
        }
        entry = {"method": self.command, "path": self.path, "headers": headers, "body": body}
        with self.lock, self.out.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        return body

    def _reply(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", "req_recorder")
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._record()
        self._not_found()

    def do_HEAD(self) -> None:
        self._record()
        self._reply(200, b"", "text/plain")

    def do_POST(self) -> None:
        body = self._record()
        path = self.path.split("?", 1)[0]
        request = body if isinstance(body, dict) else {}
        model = str(request.get("model", "unknown"))
        if path == "/v1/messages/count_tokens":
            self._reply(200, json.dumps({"input_tokens": 10}).encode(), "application/json")
        elif path == "/v1/messages" and request.get("stream") is True:
            if self.tool is not None and not _answers_tool_result(request):
                self._reply(200, streamed_tool_call(model, self.tool, self.tool_input), "text/event-stream")
            else:
                self._reply(200, streamed_answer(model), "text/event-stream")
        elif path == "/v1/messages":
            payload = json.dumps(_message(model, _REPLY_TEXT, 2)).encode()
            self._reply(200, payload, "application/json")
        else:
            self._not_found()

    def _not_found(self) -> None:
        error = {"type": "error", "error": {"type": "not_found_error", "message": f"No route {self.path}"}}
        self._reply(404, json.dumps(error).encode(), "application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tool", help="answer the first turn with a call of this tool")
    parser.add_argument("--tool-input", type=json.loads, default={}, help="the call's input, as JSON")
    args = parser.parse_args()
    handler = type(
        "Recorder", (_Recorder,), {"out": args.out, "tool": args.tool, "tool_input": args.tool_input}
    )
    ThreadingHTTPServer(("127.0.0.1", args.port), handler).serve_forever()


if __name__ == "__main__":
    main()
