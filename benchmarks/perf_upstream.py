"""The fast upstream for the benchmark: nginx answering Baseten's chat completions from canned files.

nginx cannot choose an answer by the request body without reading it (it has no cheap body
matching), and the gateway sends streamed and non-streamed requests to the same path with the
same headers. So one nginx runs two server blocks on two ports: one answers every POST with the
canned JSON completion, the other with the canned SSE stream. Each benchmark phase starts its
own gateway pointed at the port it needs; a preflight request checks the pairing before any
measurement, so a mix-up fails loudly instead of measuring error responses.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MODEL = "openai/gpt-oss-120b"
PROMPT = "Summarise the plot of Hamlet in two sentences."
MAX_COMPLETION_TOKENS = 256
# A stream of about this many chunks (before the usage chunk and [DONE]), like a short answer.
STREAM_CHUNKS = 21
TEMPLATE = Path(__file__).parent / "nginx" / "upstream.conf.template"


def request_body(stream: bool) -> dict:
    """What the benchmark's clients send to the gateway (and, for the direct figures, to nginx)."""
    body: dict = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_completion_tokens": MAX_COMPLETION_TOKENS,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def request_bytes(stream: bool) -> bytes:
    return json.dumps(request_body(stream), separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class CannedBodies:
    completion: bytes
    stream: bytes
    stream_chunks: int  # data events before [DONE], the usage chunk included


def canned_bodies() -> CannedBodies:
    """Baseten-shaped answers from the stand-in engine, for the request the benchmark sends."""
    from service.simulator.baseten import DONE_EVENT, encode_chunk
    from service.simulator.catalog import load_fake_catalog
    from service.simulator.engine import coalesce_chunks, completion_body, generate, stream_chunks

    model = load_fake_catalog()[MODEL]
    body = request_body(stream=True)
    gen = generate(model, body)
    # Fixed id and timestamp: the same bytes every run, so runs compare like for like.
    chat_id, created = "chatcmpl-" + "0" * 32, 1_754_410_981
    completion = json.dumps(completion_body(model, gen, id=chat_id, created=created),
                            separators=(",", ":")).encode("utf-8")
    chunks = stream_chunks(model, gen, id=chat_id, created=created)
    tokens_per_chunk = 1
    shaped = chunks
    while len(shaped) - 1 > STREAM_CHUNKS:
        tokens_per_chunk += 1
        shaped = coalesce_chunks(chunks, tokens_per_chunk)
    stream = b"".join(encode_chunk(c) for c in shaped) + DONE_EVENT
    return CannedBodies(completion=completion, stream=stream, stream_chunks=len(shaped))


def free_port() -> int:
    """A port free right now on loopback (the kernel's pick); the caller binds it at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        raise RuntimeError("nginx is not installed; run scripts/bench-deps.sh (make bench does)")
    return found


def render_config(run_dir: Path, json_port: int, sse_port: int) -> str:
    text = TEMPLATE.read_text("utf-8")
    for name, value in (("RUN_DIR", str(run_dir)), ("JSON_PORT", str(json_port)), ("SSE_PORT", str(sse_port))):
        text = text.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"nginx template has unfilled placeholders: {sorted(set(left))}")
    return text


class Nginx:
    """An nginx we start in the foreground (daemon off), so its master is our child to stop."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.json_port = 0
        self.sse_port = 0
        self.bodies: CannedBodies | None = None
        self.process: subprocess.Popen | None = None

    @property
    def json_url(self) -> str:
        return f"http://127.0.0.1:{self.json_port}"

    @property
    def sse_url(self) -> str:
        return f"http://127.0.0.1:{self.sse_port}"

    def start(self, timeout: float = 10.0) -> Nginx:
        binary = nginx_binary()
        canned = self.run_dir / "canned"
        for sub in ("canned", "temp"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        # Started by root, nginx's worker drops to an unprivileged user that must read the files.
        for path in (self.run_dir, canned):
            path.chmod(0o755)
        self.bodies = canned_bodies()
        (canned / "completion.json").write_bytes(self.bodies.completion)
        (canned / "stream.sse").write_bytes(self.bodies.stream)
        self.json_port, self.sse_port = free_port(), free_port()
        while self.sse_port == self.json_port:
            self.sse_port = free_port()
        config = self.run_dir / "nginx.conf"
        config.write_text(render_config(self.run_dir, self.json_port, self.sse_port), "utf-8")
        log = open(self.run_dir / "nginx.out", "wb")
        try:
            self.process = subprocess.Popen(
                [binary, "-p", str(self.run_dir), "-c", str(config), "-e", str(self.run_dir / "nginx-error.log")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not (_accepts(self.json_port) and _accepts(self.sse_port)):
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited at start: {self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nginx did not listen within {timeout} s: {self._tail()}")
            time.sleep(0.05)
        self._check()
        return self

    def _check(self) -> None:
        """Each port answers a POST with its canned body, byte for byte."""
        expected = {self.json_port: self.bodies.completion, self.sse_port: self.bodies.stream}
        for port, body in expected.items():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("POST", "/v1/chat/completions", body=request_bytes(False),
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                content = response.read()
            finally:
                conn.close()
            if response.status != 200 or content != body:
                self.stop()
                raise RuntimeError(f"nginx on port {port} answered {response.status}, not its canned body "
                                   f"(can its unprivileged worker read {self.run_dir}?): {self._tail()}")

    def _tail(self) -> str:
        for name in ("nginx-error.log", "nginx.out"):
            path = self.run_dir / name
            if path.exists() and path.stat().st_size:
                return path.read_text("utf-8", "replace")[-2000:]
        return "(no output)"

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        # SIGTERM is nginx's fast shutdown; its workers are in the new session we gave it.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
