"""Run the stand-ins: each ASGI app under uvicorn in its own thread and event loop, on loopback."""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn

from service.simulator.control import ControlledState

log = logging.getLogger(__name__)


class ServerThread:
    """One ASGI app served by uvicorn on a background thread. `start()` returns once it accepts."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],  # any ASGI app: a stand-in's, or the gateway's Litestar
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None
        self.port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        # Binding here, before the thread starts, gives the real port at once and no race for it.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto must be named: asyncio only sets TCP_NODELAY on accepted sockets whose proto is TCP,
        # and without it every response pays a 40 ms Nagle/delayed-ACK stall.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(2048)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=2,
            loop="asyncio",
            http="h11",
            # Like granian's own buffer (0.5 to 1 MB): headers past the app's 32 KB limit reach the
            # app, which answers 431 in OpenAI's shape, whether they arrive in one read or several.
            h11_max_incomplete_event_size=512 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(self._server, sock), name=f"asgi-{self.port}",
                                        daemon=True)
        self._thread.start()
        waited = 0.0
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} failed to start") from self._error
            if waited >= timeout:
                self.stop()
                raise TimeoutError(f"server on port {self.port} did not start within {timeout}s")
            threading.Event().wait(0.01)
            waited += 0.01
        return self

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported to start() or logged; a thread must not die silently
            self._error = exc
            log.exception("stand-in server on port %s stopped with an error", self.port)
        finally:
            # Background tasks an app left behind (the MCP SDK's SSE watcher) end with the loop.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


DEFAULT_KEYS = {
    "baseten": "fake-baseten-key",
    "xpay": "fake-xpay-key",
    "orthogonal": "orth_test_fakekey",
}
# Each front end: the URL suffix its clients use, and how to set its API key on its state.
MOUNTS = {"baseten": "/v1", "xpay": "/mcp", "orthogonal": "/v1"}


@dataclass
class StandIns:
    servers: dict[str, ServerThread] = field(default_factory=dict)
    states: dict[str, ControlledState] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)

    def _url(self, name: str) -> str | None:
        server = self.servers.get(name)
        return server.url + MOUNTS[name] if server else None

    @property
    def baseten_url(self) -> str | None:
        return self._url("baseten")

    @property
    def xpay_url(self) -> str | None:
        return self._url("xpay")

    @property
    def orthogonal_url(self) -> str | None:
        return self._url("orthogonal")

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# A stand-in's create_app: its state in, an ASGI app out.
AppFactory = Callable[[Any], Callable[..., Awaitable[None]]]


def _marketplace_state(name: str, key: str) -> tuple[AppFactory, ControlledState] | None:
    """(create_app, state) of xpay or Orthogonal, or None while that module does not exist yet."""
    try:
        module = importlib.import_module(f"service.simulator.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"service.simulator.{name}":
            raise
        return None
    state_class: Callable[[], ControlledState] = getattr(
        module, {"xpay": "XpayState", "orthogonal": "OrthogonalState"}[name]
    )
    state = state_class()
    _set_key(state, key)
    factory: AppFactory = module.create_app
    return factory, state


def _set_key(state: object, key: str) -> None:
    # The marketplaces keep their accepted keys either as one key or as a set/dict of keys.
    config = getattr(state, "config", None)
    for holder in (state, config):
        if holder is None:
            continue
        if hasattr(holder, "api_key"):
            holder.api_key = key
            return
        keys = getattr(holder, "api_keys", None)
        if isinstance(keys, set):
            keys.add(key)
            return
        if isinstance(keys, list):
            keys.append(key)
            return
    log.warning("could not set the API key on %s; it keeps its own default", type(state).__name__)


def start_standins(
    host: str = "127.0.0.1", ports: dict[str, int] | None = None, api_keys: dict[str, str] | None = None
) -> StandIns:
    from service.simulator.baseten import BasetenState, create_app
    from service.simulator.control import BasetenConfig

    ports = ports or {}
    keys = {**DEFAULT_KEYS, **(api_keys or {})}
    standins = StandIns(api_keys=keys)
    try:
        state = BasetenState(config=BasetenConfig.from_env(api_key=keys["baseten"]))
        standins.states["baseten"] = state
        standins.servers["baseten"] = ServerThread(create_app(state), host, ports.get("baseten", 0)).start()
        for name in ("xpay", "orthogonal"):
            found = _marketplace_state(name, keys[name])
            if found is None:
                log.info("stand-in %s not available yet; skipped", name)
                continue
            factory, market_state = found
            standins.states[name] = market_state
            standins.servers[name] = ServerThread(factory(market_state), host, ports.get(name, 0)).start()
    except BaseException:
        standins.stop()
        raise
    return standins
