"""Fault injection for the stand-ins: a small spec language, rules that match requests, error bodies.

A spec is a comma-separated list of items, from an `X-Fake-Fault` header or a control rule:
`status:<code>[:string|object|bare]`, `retry_after:<s>`, `delay_first_byte_ms:<n>`,
`inter_chunk_ms:<n>`, `drop_after_chunks:<n>`, `error_event_after_chunks:<n>`,
`malformed_chunk[:<i>]`, `finish_before_content`, `timeout[:<n>]` (hang before the response, or
after n stream events, until the client goes away), `end_after_finish` (the body ends right after
the chunk carrying the finish reason and cumulative usage: no usage-only chunk, no `[DONE]`, as a
recorded GLM-5.2 stream with `stop` did).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from http import HTTPStatus
from typing import Any

import msgspec

SHAPES = ("string", "object", "bare")

# Shape-1 messages; only the 403 one was observed, the rest follow the documented `{"error": "<message>"}`.
STATUS_MESSAGES = {
    400: "bad request",
    401: "please check the api-key you provided",
    402: "payment required: the budget for this api key is exhausted",
    403: "please check the api-key you provided",
    404: "model not found",
    408: "request timeout",
    413: "request entity too large",
    429: "rate limit exceeded",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Fault:
    status: int | None = None
    shape: str = "string"
    retry_after: str | None = None
    delay_first_byte_ms: int = 0
    inter_chunk_ms: int = 0
    drop_after_chunks: int | None = None
    error_event_after_chunks: int | None = None
    malformed_chunk: int | None = None
    finish_before_content: bool = False
    end_after_finish: bool = False
    timeout_after_chunks: int | None = None  # 0: hang before any byte is sent

    def merged(self, other: Fault | None) -> Fault:
        """This fault with every item `other` sets laid over it."""
        if other is None:
            return self
        default = Fault()
        changes = {
            f.name: getattr(other, f.name)
            for f in fields(Fault)
            if getattr(other, f.name) != getattr(default, f.name)
        }
        return replace(self, **changes)

    @property
    def shapes_stream(self) -> bool:
        """Whether a stream must be sent event by event rather than in one write."""
        return any(
            value is not None
            for value in (
                self.drop_after_chunks,
                self.error_event_after_chunks,
                self.malformed_chunk,
                self.timeout_after_chunks,
            )
        ) or self.inter_chunk_ms > 0


def _count(item: str, value: str | None) -> int:
    if value is None:
        raise FaultSpecError(f"{item} needs a number, e.g. {item}:3")
    try:
        number = int(value)
    except ValueError:
        raise FaultSpecError(f"{item}: not an integer: {value!r}") from None
    if number < 0:
        raise FaultSpecError(f"{item}: must be >= 0, got {number}")
    return number


def parse_fault(spec: str) -> Fault:
    out: dict[str, Any] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, rest = item.partition(":")
        name = name.strip().lower()
        value = rest.strip() or None
        if name == "status":
            code_text, _, shape = (value or "").partition(":")
            code = _count("status", code_text or None)
            if not 400 <= code <= 599:
                raise FaultSpecError(f"status: code must be 4xx or 5xx, got {code}")
            shape = shape.strip() or "string"
            if shape not in SHAPES:
                raise FaultSpecError(f"status: shape must be one of {SHAPES}, got {shape!r}")
            out["status"], out["shape"] = code, shape
        elif name == "retry_after":
            out["retry_after"] = str(_count(name, value))
        elif name in ("delay_first_byte_ms", "inter_chunk_ms", "drop_after_chunks", "error_event_after_chunks"):
            out[name] = _count(name, value)
        elif name == "malformed_chunk":
            out[name] = 1 if value is None else _count(name, value)
        elif name in ("finish_before_content", "end_after_finish"):
            out[name] = True
        elif name == "timeout":
            out["timeout_after_chunks"] = 0 if value is None else _count(name, value)
        else:
            raise FaultSpecError(f"unknown fault {name!r}")
    return Fault(**out)


@dataclass(slots=True)
class FaultRule:
    """A fault armed by the control endpoint. `nth` skips the first nth-1 matching requests; `times`
    caps how often it fires (default: once when `nth` is given, otherwise every time)."""

    fault: Fault
    spec: str
    path: str | None = None
    model: str | None = None
    tool: str | None = None
    nth: int | None = None
    times: int | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, path: str, model: str | None, tool: str | None) -> bool:
        if self.path is not None:
            if self.path.endswith("*"):
                if not path.startswith(self.path[:-1]):
                    return False
            elif path != self.path:
                return False
        if self.model is not None and model != self.model:
            return False
        return self.tool is None or tool == self.tool

    def describe(self) -> dict[str, object]:
        return {
            "match": {"path": self.path, "model": self.model, "tool": self.tool, "nth": self.nth},
            "fault": self.spec,
            "times": self.times,
            "seen": self.seen,
            "fired": self.fired,
        }


@dataclass(slots=True)
class FaultBook:
    rules: list[FaultRule] = field(default_factory=list)

    def add(self, payload: object) -> FaultRule:
        if not isinstance(payload, dict) or not isinstance(payload.get("fault"), str):
            raise FaultSpecError('expected {"match": {...}, "fault": "<spec>", "times"?: n}')
        match = payload.get("match") or {}
        if not isinstance(match, dict):
            raise FaultSpecError("match must be an object")
        unknown = set(match) - {"path", "model", "tool", "nth"}
        if unknown:
            raise FaultSpecError(f"unknown match keys {sorted(unknown)}")
        nth = match.get("nth")
        times = payload.get("times")
        for label, value in (("nth", nth), ("times", times)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise FaultSpecError(f"{label} must be a positive integer")
        if times is None and nth is not None:
            times = 1
        rule = FaultRule(
            fault=parse_fault(payload["fault"]),
            spec=payload["fault"],
            path=match.get("path"),
            model=match.get("model"),
            tool=match.get("tool"),
            nth=nth,
            times=times,
        )
        self.rules.append(rule)
        return rule

    def take(self, path: str, model: str | None = None, tool: str | None = None) -> Fault | None:
        """The fault (merged from every rule that fires) for this request, counting it against the rules."""
        result: Fault | None = None
        for rule in self.rules:
            if not rule.matches(path, model, tool):
                continue
            rule.seen += 1
            if rule.nth is not None and rule.seen < rule.nth:
                continue
            if rule.times is not None and rule.fired >= rule.times:
                continue
            rule.fired += 1
            result = rule.fault if result is None else result.merged(rule.fault)
        return result

    def clear(self) -> None:
        self.rules.clear()

    def describe(self) -> list[dict[str, object]]:
        return [rule.describe() for rule in self.rules]


def string_error(message: str) -> bytes:
    """Shape 1, byte-exact as Baseten's edge sends it (compact JSON and a trailing newline)."""
    return msgspec.json.encode({"error": message}) + b"\n"


def object_error(code: int, message: str) -> bytes:
    """Shape 2: the engine's validation error, pretty-printed with tabs."""
    body = {"error": {"code": code, "message": message, "type": HTTPStatus(code).phrase}}
    return json.dumps(body, indent="\t", ensure_ascii=False).encode("utf-8")


def bare_error(code: int, message: str) -> bytes:
    """Shape 3 (GLM-5.2): the error object without its wrapper."""
    return msgspec.json.encode({"message": message, "type": HTTPStatus(code).phrase, "code": code})


def error_bytes(code: int, message: str | None = None, shape: str = "string") -> bytes:
    text = message or STATUS_MESSAGES.get(code) or HTTPStatus(code).phrase.lower()
    if shape == "object":
        return object_error(code, text)
    if shape == "bare":
        return bare_error(code, text)
    return string_error(text)


def stream_error_event(message: str = "internal server error during generation") -> bytes:
    error = {"error": {"message": message, "type": "server_error", "code": 500}}
    return b"data: " + msgspec.json.encode(error) + b"\n\n"
