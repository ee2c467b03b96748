"""The stand-ins' control surface: settings knobs, the bounded request log, and `/__control/*`."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qsl, urlencode

import msgspec

from service.simulator.faults import FaultBook, FaultSpecError

SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie"})
SECRET_QUERY = frozenset({"key", "api_key", "apikey", "token"})
REDACTED = "[redacted]"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        lowered = name.lower()
        secret = lowered in SECRET_HEADERS or any(w in lowered for w in ("token", "secret", "key"))
        out[lowered] = REDACTED if secret else value
    return out


def redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in SECRET_QUERY else v) for k, v in pairs])


class RequestLog:
    """The last `limit` requests, for test assertions; bounded so a benchmark run cannot grow it."""

    def __init__(self, limit: int = 1000, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries: deque[dict[str, object]] = deque(maxlen=limit)

    def record(self, method: str, path: str, query: str, headers: Mapping[str, str], body: object) -> None:
        if not self.enabled:
            return
        self._entries.append(
            {
                "time": time.time(),
                "method": method,
                "path": path,
                "query": redact_query(query),
                "headers": redact_headers(headers),
                "body": body,
            }
        )

    def entries(self) -> list[dict[str, object]]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class ConfigError(ValueError):
    pass


@dataclass(slots=True)
class BasetenConfig:
    api_key: str = "fake-baseten-key"
    auth_status: int = 403
    unknown_model_status: int = 403
    exhausted_keys: list[str] = field(default_factory=list)
    ttft_ms: int = 0
    inter_token_ms: int = 0
    tokens_per_chunk: int = 1
    total_latency_ms: int = 0
    fake_tool_call: bool = False
    fake_cached: int = 0
    reasoning_effort_policy: str = "ignore"
    max_body_bytes: int = 100 * 1024 * 1024
    log_requests: bool = True

    CHOICES: ClassVar[Mapping[str, tuple[object, ...]]] = {
        "auth_status": (401, 403),
        "unknown_model_status": (403, 404),
        "reasoning_effort_policy": ("ignore", "400"),
    }
    MINIMUM: ClassVar[Mapping[str, int]] = {"tokens_per_chunk": 1, "max_body_bytes": 1}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> BasetenConfig:
        """Latency knobs from SIM_TTFT_MS, SIM_INTER_TOKEN_MS, SIM_TOKENS_PER_CHUNK, SIM_TOTAL_LATENCY_MS."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in ("ttft_ms", "inter_token_ms", "tokens_per_chunk", "total_latency_ms"):
            raw = env.get(f"SIM_{name.upper()}")
            if raw is not None and raw.strip():
                values[name] = raw.strip()
        return cls().updated({**values, **overrides})

    def updated(self, changes: Mapping[str, Any]) -> BasetenConfig:
        known = {f.name: f for f in fields(self)}
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ConfigError(f"unknown config key {name!r}")
            clean[name] = self._coerce(name, getattr(self, name), value)
        return replace(self, **clean)

    def _coerce(self, name: str, current: Any, value: Any) -> Any:
        if isinstance(current, bool):
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false")
            return value
        if isinstance(current, int):
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be an integer, got {value!r}") from None
            if isinstance(value, bool) or number < self.MINIMUM.get(name, 0):
                raise ConfigError(f"{name} must be an integer >= {self.MINIMUM.get(name, 0)}")
            value = number
        elif isinstance(current, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a list of strings")
            value = list(value)
        elif isinstance(current, str):
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be a string")
            value = str(value)
        if name in self.CHOICES and value not in self.CHOICES[name]:
            raise ConfigError(f"{name} must be one of {self.CHOICES[name]}")
        return value

    def public(self) -> dict[str, object]:
        out = asdict(self)
        out["api_key"] = REDACTED if self.api_key else None
        return out


# A control answer: its HTTP status and a JSON-able payload.
ControlAnswer = tuple[int, object]


class ControlledState(Protocol):
    """What every stand-in's state offers the control surface."""

    @property
    def faults(self) -> FaultBook: ...

    @property
    def log(self) -> RequestLog: ...

    def reset(self) -> None: ...


class ConfiguredState(ControlledState, Protocol):
    """A stand-in whose knobs are a BasetenConfig (the Baseten stand-in)."""

    @property
    def config(self) -> BasetenConfig: ...

    def configure(self, changes: Mapping[str, Any]) -> None: ...


def common_control(state: ControlledState, action: str, method: str) -> ControlAnswer | None:
    """The control actions every stand-in has: its request log and a reset; None for the rest."""
    if action == "requests" and method == "GET":
        return 200, {"requests": state.log.entries()}
    if action == "requests" and method == "DELETE":
        state.log.clear()
        return 200, {"ok": True}
    if action == "reset" and method == "POST":
        state.reset()
        return 200, {"ok": True}
    return None


def handle_control(state: ConfiguredState, method: str, path: str, body: bytes) -> ControlAnswer:
    """Answer one `/__control/...` request: (status, JSON-able payload)."""
    action = path.removeprefix("/__control/").strip("/")
    try:
        payload = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError:
        return 400, {"error": "body is not valid JSON"}
    if (common := common_control(state, action, method)) is not None:
        return common
    if action == "config" and method == "GET":
        return 200, state.config.public()
    if action == "config" and method == "POST":
        if not isinstance(payload, dict):
            return 400, {"error": "expected a JSON object of config keys"}
        try:
            state.configure(payload)
        except ConfigError as exc:
            return 400, {"error": str(exc)}
        return 200, state.config.public()
    return fault_control(state.faults, method, path, payload)


def fault_control(faults: FaultBook, method: str, path: str, payload: object) -> ControlAnswer:
    """`/__control/faults` (GET, POST, DELETE); 404 for any other action."""
    action = path.removeprefix("/__control/").strip("/")
    if action == "faults" and method == "GET":
        return 200, {"rules": faults.describe()}
    if action == "faults" and method == "POST":
        try:
            rule = faults.add(payload)
        except FaultSpecError as exc:
            return 400, {"error": str(exc)}
        return 200, rule.describe()
    if action == "faults" and method == "DELETE":
        faults.clear()
        return 200, {"ok": True}
    return 404, {"error": f"no control action {method} {path}"}
