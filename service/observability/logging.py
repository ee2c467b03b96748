"""structlog JSON logs: one line per request, never a prompt, a completion or a secret."""

from __future__ import annotations

import atexit
import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import BinaryIO, cast

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# Any field whose name says secret is replaced, whatever logged it.
# "token" only as a whole word, so token counts (prompt_tokens) stay readable.
_SECRET_FIELDS = re.compile(
    r"(authorization|api[-_]?key|secret|password|cookie|(^|[-_])token($|[-_])|^key$)", re.IGNORECASE
)
_KEY_PATTERN = re.compile(r"(sk-sy-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+|(xpay_sk_|orth_(?:live|test)_)[A-Za-z0-9_\-]+")


# Fields the gateway itself fills with numbers, ids and model names: no secret can be in them.
_SAFE_FIELDS = frozenset({
    "key_prefix", "request_id", "tenant_id", "requested_model", "served_model", "route", "attempts", "status",
    "error_code", "stream", "prompt_tokens", "completion_tokens", "cost_usd", "billed_usd", "duration_ms",
    "ttft_ms", "client_disconnected", "timestamp", "level", "event",
})


def _redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key in list(event_dict):
        if key in _SAFE_FIELDS:
            continue
        if _SECRET_FIELDS.search(key):
            event_dict[key] = "[redacted]"
        else:
            value = event_dict[key]
            if isinstance(value, str) and ("sk-sy-" in value or "xpay_sk_" in value or "orth_" in value):
                event_dict[key] = _KEY_PATTERN.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", value)
    return event_dict


# Any string value longer than this is cut: a client chooses model names, end users, tags and some
# headers, and a 100 kB one must not become a 100 kB log line (storage, shippers' line limits).
MAX_LOGGED_CHARS = 256
# A traceback keeps its lines (each bounded) up to this many characters, its last ones first.
_MAX_TRACEBACK_LINE = 1024
_MAX_TRACEBACK_CHARS = 16 * 1024
_MAX_NESTING = 4


def _cut(value: str) -> str:
    if len(value) <= MAX_LOGGED_CHARS:
        return value
    return f"{value[:MAX_LOGGED_CHARS]}...[truncated {len(value) - MAX_LOGGED_CHARS} chars]"


def _bounded(value: object, depth: int = 0) -> object:
    if isinstance(value, str):
        return _cut(value)
    if depth >= _MAX_NESTING:
        return value if isinstance(value, (int, float, bool)) or value is None else _cut(repr(value))
    if isinstance(value, dict):
        return {_cut(k) if isinstance(k, str) else k: _bounded(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_bounded(v, depth + 1) for v in value]
    return value


def _bounded_traceback(text: str) -> str:
    lines = [line if len(line) <= _MAX_TRACEBACK_LINE
             else f"{line[:_MAX_TRACEBACK_LINE]}...[truncated {len(line) - _MAX_TRACEBACK_LINE} chars]"
             for line in text.splitlines()]
    bounded = "\n".join(lines)
    if len(bounded) > _MAX_TRACEBACK_CHARS:
        # The end says what was raised and where: keep it.
        bounded = f"[truncated {len(bounded) - _MAX_TRACEBACK_CHARS} chars]...{bounded[-_MAX_TRACEBACK_CHARS:]}"
    return bounded


def _bound_lengths(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if key == "exception" and isinstance(value, str):
            event_dict[key] = _bounded_traceback(value)
        elif not isinstance(value, (int, float, bool)) and value is not None:
            event_dict[key] = _bounded(value)
    return event_dict


def _known_secrets(values: Iterable[str]) -> Processor:
    """Replaces the operator's own secrets (admin token, provider keys) wherever they appear,
    whatever field carries them: their shape is not known, their values are."""
    secrets = tuple(sorted({v for v in values if v and len(v) >= 8}, key=len, reverse=True))

    def processor(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        if not secrets:
            return event_dict
        for key, value in event_dict.items():
            if isinstance(value, str):
                redacted = value
                for secret in secrets:
                    if secret in redacted:
                        redacted = redacted.replace(secret, "[redacted]")
                event_dict[key] = redacted
        return event_dict

    return processor


class BufferedOutput:
    """Log lines gathered in memory and written at least every `interval` seconds (and when the
    buffer grows past 64 KiB, and at exit): a write and flush syscall per request line was a
    twelfth of a worker's time under load."""

    def __init__(self, raw: BinaryIO, interval: float = 0.1, limit: int = 64 * 1024) -> None:
        self._raw = raw
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), name="log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, data: bytes) -> None:
        with self._lock:
            self._parts.append(data)
            self._size += len(data)
            full = self._size >= self._limit
        if full:
            self.drain()

    def flush(self) -> None:
        """structlog flushes after every line; the thread does it on its own schedule instead."""

    def drain(self) -> None:
        with self._lock:
            parts, self._parts, self._size = self._parts, [], 0
        if parts:
            try:
                self._raw.write(b"".join(parts))
                self._raw.flush()
            except (OSError, ValueError):
                pass  # stdout closed: nowhere left to write

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.drain()

    def close(self) -> None:
        self._stop.set()
        self.drain()


_output: BufferedOutput | None = None


def _buffered(raw: BinaryIO) -> BufferedOutput:
    global _output  # noqa: PLW0603 - one buffer per process, swapped only when stdout changes
    if _output is None or _output._raw is not raw:
        if _output is not None:
            _output.close()
        _output = BufferedOutput(raw)
    return _output


def flush_logs() -> None:
    if _output is not None:
        _output.drain()


def configure_logging(level: str = "INFO", json: bool = True, secrets: Iterable[str] = ()) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stdout, level=numeric, format="%(message)s", force=True)
    for noisy in ("httpx", "httpcore", "mcp", "uvicorn.access", "granian.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # orjson renders into bytes written straight to stdout: the stdlib encoder was a tenth of a request.
    raw_stdout: BinaryIO | None = getattr(sys.stdout, "buffer", None)
    renderer: Processor
    if not json:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    elif raw_stdout is not None:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj).decode())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # After the traceback is rendered, so a secret in an exception message is caught too.
            structlog.processors.format_exc_info,
            _redact,
            _known_secrets(secrets),
            # Last: a secret cut in half would no longer be recognised by the two above.
            _bound_lengths,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # BytesLogger only calls write and flush, which BufferedOutput has; it is not a full BinaryIO.
        logger_factory=(structlog.BytesLoggerFactory(file=cast(BinaryIO, _buffered(raw_stdout)))
                        if json and raw_stdout is not None
                        else structlog.PrintLoggerFactory(file=sys.stdout)),
        cache_logger_on_first_use=True,
    )
