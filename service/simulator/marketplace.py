"""What the xpay and Orthogonal stand-ins share: the Baseten they resell, knobs, money, ASGI helpers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import msgspec

from service.asgi import ClientGone, Receive, Send, read_request_body
from service.simulator.baseten import BasetenState, create_app
from service.simulator.catalog import load_fake_catalog
from service.simulator.control import (
    BasetenConfig,
    ControlAnswer,
    ControlledState,
    common_control,
    fault_control,
    handle_control,
)
from service.simulator.engine import FakeModel
from service.simulator.faults import Fault

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# The key the marketplaces use for their own Baseten account; never seen by their clients.
UPSTREAM_KEY = "standin-marketplace-upstream-key"
JSON_HEADERS = [(b"content-type", b"application/json")]


def format_usd(amount: Decimal, places: int = 6) -> str:
    """A dollar amount as marketplaces print it: at least 2 and at most `places` decimals, no `$`."""
    quantized = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    whole, _, fraction = f"{quantized:f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


class KnobError(ValueError):
    pass


def apply_knobs(
    config: DataclassInstance, changes: Mapping[str, object], choices: Mapping[str, tuple[object, ...]]
) -> None:
    """Validate every change against the dataclass field types and `choices`, then apply them all."""
    known = {f.name: str(f.type) for f in dataclasses.fields(config)}
    clean: dict[str, object] = {}
    for name, value in changes.items():
        if name not in known:
            raise KnobError(f"unknown config key {name!r}")
        kind = known[name]
        if value is None:
            if "None" not in kind:
                raise KnobError(f"{name} cannot be null")
            clean[name] = None
            continue
        clean[name] = _coerce(name, kind.replace(" | None", ""), value)
        if name in choices and clean[name] not in choices[name]:
            raise KnobError(f"{name} must be one of {choices[name]}")
    for name, value in clean.items():
        setattr(config, name, value)


def _coerce(name: str, kind: str, value: object) -> object:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise KnobError(f"{name} must be true or false")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise KnobError(f"{name} must be a non-negative integer")
    if kind == "Decimal":
        try:
            number = Decimal(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise KnobError(f"{name} must be a decimal string such as \"1.50\"")
        return number
    if isinstance(value, str):
        return value
    raise KnobError(f"{name} must be a string")


def public_config(config: DataclassInstance, secrets: tuple[str, ...] = ("api_key",)) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in secrets:
            value = "[redacted]" if value else None
        elif isinstance(value, Decimal):
            value = str(value)
        out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    status: int
    body: bytes
    content_type: str


class UpstreamBaseten:
    """The Baseten a marketplace resells: the Baseten stand-in called in-process over ASGI (no socket),
    or a running Baseten stand-in over HTTP when `url` is given.

    The HTTP client is made on first use, inside the event loop of the server that owns this object.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 120.0) -> None:
        self.url = url
        self.state: BasetenState | None = None
        if url is None:
            self.state = BasetenState(config=BasetenConfig(api_key=UPSTREAM_KEY))
            self.models: dict[str, FakeModel] = self.state.models
            self._key = UPSTREAM_KEY
        else:
            self.models = load_fake_catalog()
            self._key = api_key or ""
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            if self.state is not None:
                self._client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=create_app(self.state)),
                    base_url="http://baseten.standin/v1",
                    timeout=self._timeout,
                )
            else:
                base_url = (self.url or "").rstrip("/")  # no in-process state: a url was given
                self._client = httpx.AsyncClient(base_url=base_url, timeout=self._timeout)
        return self._client

    async def chat(self, body: dict[str, Any], fault: str | None = None) -> UpstreamAnswer:
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        if fault:
            headers["X-Fake-Fault"] = fault
        try:
            payload = msgspec.json.encode(body)
            response = await self._http().post("/chat/completions", content=payload, headers=headers)
        except httpx.TimeoutException:
            return UpstreamAnswer(504, b'{"error":"gateway timeout"}', "application/json")
        except httpx.HTTPError:
            return UpstreamAnswer(502, b'{"error":"bad gateway"}', "application/json")
        return UpstreamAnswer(response.status_code, response.content, response.headers.get("content-type", ""))

    def control(self, method: str, path: str, body: bytes) -> ControlAnswer:
        """`/__control/upstream/...` on the marketplace: the in-process Baseten's own control surface."""
        if self.state is None:
            return 404, {"error": "the upstream is a separate server: use its own /__control endpoints"}
        return handle_control(self.state, method, path, body)

    def reset(self) -> None:
        if self.state is not None:
            self.state.reset()


async def read_body(receive: Receive, limit: int = 16 * 1024 * 1024) -> bytes | None:
    """The whole request body, or None if the client went away or sent more than `limit`."""
    try:
        return await read_request_body(receive, limit)
    except ClientGone:
        return None


async def send_json(send: Send, status: int, payload: object, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    all_headers = JSON_HEADERS + (headers or []) + [(b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


def scope_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


def decode_json(raw: bytes) -> Any:  # whatever JSON the client sent: every reader checks its shape
    try:
        return msgspec.json.decode(raw) if raw.strip() else None
    except msgspec.DecodeError:
        return None


class MarketState(ControlledState, Protocol):
    """What a marketplace stand-in's state offers its control surface."""

    @property
    def config(self) -> DataclassInstance: ...

    @property
    def upstream(self) -> UpstreamBaseten: ...

    def configure(self, changes: dict[str, Any]) -> None: ...

    def set_balance(self, payload: dict[str, Any]) -> None: ...

    def balance_view(self) -> dict[str, object]: ...

    def extra_control(self, action: str, method: str, payload: object) -> ControlAnswer | None: ...


def handle_market_control(state: MarketState, method: str, path: str, raw: bytes) -> ControlAnswer:
    """`/__control/...` for a marketplace stand-in.

    requests (GET, DELETE), reset, config (GET, POST), balance (GET, POST), faults (GET, POST,
    DELETE: HTTP-level faults of the marketplace itself), and upstream/... (the resold Baseten's own
    control surface, e.g. upstream/faults). A state may add actions with `extra_control`.
    """
    action = path.removeprefix("/__control/").strip("/")
    if action.startswith("upstream/"):
        return state.upstream.control(method, "/__control/" + action.removeprefix("upstream/"), raw)
    payload = decode_json(raw)
    if raw.strip() and payload is None:
        return 400, {"error": "body is not valid JSON"}
    if (common := common_control(state, action, method)) is not None:
        return common
    if action in ("config", "balance") and method == "POST" and not isinstance(payload, dict):
        return 400, {"error": "expected a JSON object"}
    try:
        if action == "config" and method == "POST":
            state.configure(payload)
        if action == "balance" and method == "POST":
            state.set_balance(payload)
    except KnobError as exc:
        return 400, {"error": str(exc)}
    if action == "config" and method in ("GET", "POST"):
        return 200, public_config(state.config)
    if action == "balance" and method in ("GET", "POST"):
        return 200, state.balance_view()
    if action == "faults":
        return fault_control(state.faults, method, path, payload)
    extra = state.extra_control(action, method, payload)
    if extra is not None:
        return extra
    return 404, {"error": f"no control action {method} {path}"}


async def delay_or_hang(fault: Fault, receive: Receive) -> bool:
    """Applies a fault's first-byte delay; True when the fault is a hang (the client has gone by
    the time this returns)."""
    if fault.delay_first_byte_ms:
        await asyncio.sleep(fault.delay_first_byte_ms / 1000)
    if fault.timeout_after_chunks is None:
        return False
    while (await receive())["type"] != "http.disconnect":
        pass
    return True
