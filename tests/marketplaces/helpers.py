"""Shared by the marketplace tests: routes, bodies, and a running stand-in with its control surface."""

from __future__ import annotations

from typing import Any

import httpx

from service.catalog.loader import load_catalog
from service.catalog.model import Route
from service.simulator.runner import ServerThread

MODEL = "openai/gpt-oss-120b"


def route(front_end: str, model: str = MODEL) -> Route:
    found = load_catalog().find_route(front_end, model)
    assert found is not None, f"no {front_end} route for {model}"
    return found


def chat(text: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
    },
}


class Running:
    """A stand-in served on an ephemeral port, with helpers for its /__control endpoints."""

    def __init__(self, app: Any, state: Any) -> None:
        self.state = state
        self.server = ServerThread(app).start()
        self.url = self.server.url
        self.control = httpx.Client(base_url=self.url + "/__control", timeout=10)

    def reset(self) -> None:
        self.control.post("/reset").raise_for_status()
        self.control.delete("/upstream/faults").raise_for_status()

    def configure(self, **knobs: Any) -> None:
        self.control.post("/config", json=knobs).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return self.control.get("/requests").json()["requests"]

    def stop(self) -> None:
        self.control.close()
        self.server.stop()
