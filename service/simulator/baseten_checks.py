"""Auth and request validation for the stand-in Baseten, with the error shapes Baseten uses for each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.simulator.control import BasetenConfig
from service.simulator.engine import FakeModel, prompt_tokens_for
from service.simulator.faults import bare_error, object_error, string_error

AUTH_MESSAGE = "please check the api-key you provided"
EXHAUSTED_MESSAGE = "budget exceeded: this api key has reached its spending limit"
ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
# Which input modality each non-text content part needs.
PART_MODALITY = {"image_url": "image", "input_audio": "audio", "audio_url": "audio", "video_url": "video"}
FORMAT_TYPES = ("text", "json_object", "json_schema", "grammar", "structural_tag")


def whole_number(value: object) -> int | None:
    """An integer field as the engines' pydantic models read it in lax mode: 64 or 64.0, never True
    [INF: Baseten's engines validate with pydantic; 64.0 is also the integer 64 to JSON Schema]."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class Reject(Exception):
    """A ready-made error response."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or []


def check_auth(config: BasetenConfig, headers: Mapping[str, str]) -> None:
    scheme, _, key = headers.get("authorization", "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() not in ("bearer", "api-key") or not key or (config.api_key and key != config.api_key):
        raise Reject(config.auth_status, string_error(AUTH_MESSAGE))
    if key in config.exhausted_keys:
        raise Reject(402, string_error(EXHAUSTED_MESSAGE))


def validate(models: Mapping[str, FakeModel], config: BasetenConfig, body: object) -> FakeModel:
    """The model a valid body asks for; otherwise a Reject in the shape Baseten uses for that error."""
    if not isinstance(body, dict):
        raise Reject(400, object_error(400, "Validation: request body must be a JSON object"))
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise Reject(400, object_error(400, "Validation: `model` is required"))
    model = models.get(model_id)
    if model is None:
        if config.unknown_model_status == 404:
            raise Reject(404, string_error("model not found"))
        raise Reject(403, string_error(AUTH_MESSAGE))

    def bad(message: str) -> Reject:
        shaped = bare_error if model.stream_style == "sparse" else object_error
        return Reject(400, shaped(400, message))

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("Validation: `messages` must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad(f"Validation: `messages[{i}].role` must be one of system, user, assistant, tool")
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise bad(f"Validation: `messages[{i}].tool_call_id` is required for tool messages")
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            needed = PART_MODALITY.get(kind) if isinstance(kind, str) else None
            if needed and needed not in model.input_modalities:
                raise bad("This model does not support multimodal (image/video/audio) inputs.")
    for name in ("n", "best_of"):
        if body.get(name) not in (None, 1):
            raise bad(f"Validation: `{name}` must be 1")
    budget = 4096
    for name in ("max_tokens", "max_completion_tokens"):
        value = whole_number(body.get(name))
        if body.get(name) is None:
            continue
        if value is None or value < 1:
            raise bad(f"Validation: `{name}` must be an integer of at least 1")
        if value > model.max_completion_tokens:
            raise bad(f"Validation: `{name}` must be at most {model.max_completion_tokens}")
        budget = value
    prompt = prompt_tokens_for(messages, body.get("tools"))
    if prompt + budget > model.context_length:
        raise bad(
            f"This model's maximum context length is {model.context_length} tokens. However, you requested "
            f"{prompt + budget} tokens ({prompt} in the messages, {budget} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    _validate_format(body.get("response_format"), bad)
    _validate_tools(body, bad)
    effort = body.get("reasoning_effort")
    if effort is not None and config.reasoning_effort_policy == "400":
        if "reasoning_effort" not in model.supported_features:
            raise bad("This model does not support `reasoning_effort`.")
        if model.allowed_efforts and effort not in model.allowed_efforts:
            raise bad(f"Validation: `reasoning_effort` must be one of {', '.join(model.allowed_efforts)}")
    if body.get("stream") not in (None, True, False):
        raise bad("Validation: `stream` must be a boolean")
    if body.get("stream_options") is not None and not isinstance(body.get("stream_options"), dict):
        raise bad("Validation: `stream_options` must be an object")
    return model


def _validate_format(fmt: object, bad: Callable[[str], Reject]) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") not in FORMAT_TYPES:
        raise bad(f"Validation: `response_format.type` must be one of {', '.join(FORMAT_TYPES)}")
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not spec.get("name"):
            raise bad("Validation: `response_format.json_schema.name` cannot be empty")


def _function(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, dict) else {}


def _validate_tools(body: Mapping[str, Any], bad: Callable[[str], Reject]) -> None:
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list)
        or not all(isinstance(t, dict) and isinstance(_function(t).get("name"), str) for t in tools)
    ):
        raise bad("Validation: `tools` must be an array of {type: function, function: {name, parameters}}")
    choice = body.get("tool_choice")
    names = {t["function"]["name"] for t in tools or ()}
    if isinstance(choice, dict):
        wanted = _function(choice).get("name")
        if wanted not in names:
            raise bad(f"Validation: `tool_choice` names function `{wanted}`, which is not in `tools`")
    elif choice == "required" and not names:
        raise bad("Validation: `tool_choice` is `required` but no `tools` were given")
    elif choice not in (None, "none", "auto", "required"):
        raise bad("Validation: `tool_choice` must be none, auto, required or a named function")
