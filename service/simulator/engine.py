"""The fake model engine every stand-in answers from: deterministic replies in Baseten's exact shapes.

The same (model, messages, params) always gives the same tokens, so a test can compare what the
gateway returns over one route with what another route returned for the same request.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypedDict

from service.simulator.schema_values import LOREM, value_for_schema

# A JSON object as the wire carries it: a completion body, a chunk, a delta, a usage block.
JsonObject: TypeAlias = dict[str, Any]


class FunctionCall(TypedDict):
    name: str | None
    arguments: str


class ToolCall(TypedDict):
    id: str
    type: str
    function: FunctionCall

DEFAULT_MAX_TOKENS = 4096

_THINKING = (
    "We need to answer the user so first consider what is asked then check the details and keep the "
    "reply short because that is what they want"
).split()
# Every character falls into exactly one alternative, so the fragments always join back to the text.
_FRAGMENT = re.compile(r"\w{1,6}|\s+|[^\w\s]{1,2}")
_NULL_DELTA = {"content": None, "function_call": None, "tool_calls": None, "role": None, "refusal": None}
# GLM-5.2 reports the stop token's id on its choices; the gateway must tolerate the extra key.
_GLM_STOP_TOKEN = 154827


@dataclass(frozen=True)
class FakeModel:
    id: str
    context_length: int
    max_completion_tokens: int
    pricing: dict[str, str]
    supported_features: tuple[str, ...]
    input_modalities: tuple[str, ...]
    reasoning_mode: str
    allowed_efforts: tuple[str, ...]
    stream_style: str
    reasoning_tokens_reported: bool
    # The full /v1/models entry as the catalog file gives it (without the fake-only keys).
    entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def listing(self) -> JsonObject:
        if self.entry:
            return {k: v for k, v in self.entry.items() if k != "fake"}
        return {
            "id": self.id,
            "created": 0,
            "object": "model",
            "owned_by": "baseten",
            "name": self.id,
            "description": "",
            "context_length": self.context_length,
            "max_completion_tokens": self.max_completion_tokens,
            "quantization": "fp8",
            "pricing": dict(self.pricing),
            "supported_sampling_parameters": ["temperature", "stop"],
            "supported_features": list(self.supported_features),
            "input_modalities": list(self.input_modalities),
            "output_modalities": ["text"],
        }

    @property
    def nulls(self) -> bool:
        return self.stream_style == "nulls"


@dataclass
class Generation:
    reasoning_pieces: list[str]
    content_pieces: list[str] | None
    tool_calls: list[ToolCall] | None
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int

    @property
    def tool_fragments(self) -> list[list[str]]:
        """Each tool call's arguments as the token-sized fragments a stream sends."""
        return [argument_fragments(c["function"]["arguments"]) for c in self.tool_calls or ()]

    @property
    def completion_tokens(self) -> int:
        answer = len(self.content_pieces or ()) + sum(len(f) for f in self.tool_fragments)
        return len(self.reasoning_pieces) + answer

    def usage(self, model: FakeModel, upto_pieces: int | None = None) -> JsonObject:
        total = self.completion_tokens
        done = total if upto_pieces is None else max(0, min(upto_pieces, total))
        reasoning = min(done, len(self.reasoning_pieces)) if model.reasoning_tokens_reported else 0
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
            "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": self.cached_tokens},
            "completion_tokens_details": {
                "accepted_prediction_tokens": 0,
                "audio_tokens": 0,
                "reasoning_tokens": reasoning,
                "rejected_prediction_tokens": 0,
            },
        }


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def prompt_tokens_for(messages: Any, tools: Any = None) -> int:
    tokens = math.ceil(len(_compact(messages)) / 4)
    if tools:
        tokens += math.ceil(len(_compact(tools)) / 4)
    return tokens


def argument_fragments(text: str) -> list[str]:
    return _FRAGMENT.findall(text)


def _rng(model: FakeModel, body: Mapping[str, Any], salt: str) -> random.Random:
    key = _compact([model.id, body.get("messages"), salt])
    return random.Random(hashlib.sha256(key.encode("utf-8")).digest())


def _hex32(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _words(rng: random.Random, vocab: list[str], count: int) -> list[str]:
    return [rng.choice(vocab) for _ in range(count)]


def _as_pieces(words: list[str]) -> list[str]:
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def reasoning_enabled(model: FakeModel, body: Mapping[str, Any]) -> bool:
    if model.reasoning_mode in ("default_on", "always_on"):
        return True
    if model.reasoning_mode == "opt_in":
        args = body.get("chat_template_args")
        return isinstance(args, Mapping) and args.get("enable_thinking") is True
    return False


def _json_content(body: Mapping[str, Any], rng: random.Random) -> str | None:
    fmt = body.get("response_format")
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return _compact(value_for_schema(schema or {"type": "object"}, rng))
    if fmt.get("type") == "json_object":
        return _compact({"answer": " ".join(_words(rng, LOREM, rng.randint(3, 8)))})
    return None


def _chosen_tool(body: Mapping[str, Any], fake_tool_call: bool) -> Mapping[str, Any] | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, Mapping)]
    if not tools:
        return None
    choice = body.get("tool_choice", "auto")
    if isinstance(choice, Mapping):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if (tool.get("function") or {}).get("name") == wanted:
                return tool.get("function") or {}
        return {"name": wanted, "parameters": {"type": "object"}}
    if choice == "required" or (choice == "auto" and fake_tool_call):
        return tools[0].get("function") or {}
    return None


def _budget(body: Mapping[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, float) and value.is_integer():
            return int(value)  # read as the engines' pydantic models do
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return DEFAULT_MAX_TOKENS


def generate(
    model: FakeModel, body: Mapping[str, Any], *, fake_cached: int = 0, fake_tool_call: bool = False
) -> Generation:
    """Answer a validated chat-completions body deterministically."""
    messages = body.get("messages") or []
    prompt = prompt_tokens_for(messages, body.get("tools"))
    budget = _budget(body)
    reasoning: list[str] = []
    if reasoning_enabled(model, body):
        rng = _rng(model, body, "reasoning")
        start = rng.randrange(len(_THINKING))
        # A rotation of one sentence reads like thinking, unlike a bag of random words.
        words = [_THINKING[(start + i) % len(_THINKING)] for i in range(rng.randint(7, 31))]
        reasoning = _as_pieces(["We", *words])
    finish = "stop"
    content: list[str] | None = None
    calls: list[ToolCall] | None = None
    if len(reasoning) >= budget:
        reasoning, content, calls, finish = reasoning[:budget], None, None, "length"
    else:
        left = budget - len(reasoning)
        tool = _chosen_tool(body, fake_tool_call)
        if tool is not None:
            rng = _rng(model, body, "tool")
            schema = tool.get("parameters") or {"type": "object"}
            arguments = json.dumps(value_for_schema(schema, rng), indent=2)
            fragments = argument_fragments(arguments)
            finish = "tool_calls"
            if len(fragments) > left:
                fragments, finish = fragments[:left], "length"
            calls = [
                {
                    "id": f"chatcmpl-tool-{_hex32(rng)}",
                    "type": "function",
                    "function": {"name": tool.get("name"), "arguments": "".join(fragments)},
                }
            ]
        else:
            rng = _rng(model, body, "content")
            text = _json_content(body, rng)
            if text is not None:
                content = argument_fragments(text)
            else:
                words = _words(rng, LOREM, rng.randint(8, 24))
                words[0] = words[0].capitalize()
                content = [*_as_pieces(words), "."]
            if len(content) > left:
                content, finish = content[:left], "length"
    cached = max(0, min(int(fake_cached), prompt))
    return Generation(reasoning, content, calls, finish, prompt, cached)


def _choice_extras(model: FakeModel, finish: str) -> JsonObject:
    if model.stream_style == "sparse":
        return {"stop_reason": _GLM_STOP_TOKEN if finish == "stop" else None}
    return {}


def completion_body(
    model: FakeModel, gen: Generation, *, id: str | None = None, created: int | None = None
) -> JsonObject:
    message: JsonObject = {}
    if gen.tool_calls is not None:
        message["tool_calls"] = gen.tool_calls
    elif gen.content_pieces is not None:
        message["content"] = "".join(gen.content_pieces)
    message["role"] = "assistant"
    if gen.reasoning_pieces:
        message["reasoning_content"] = "".join(gen.reasoning_pieces)
    choice: JsonObject = {"index": 0, "message": message, "finish_reason": gen.finish_reason}
    choice.update(_choice_extras(model, gen.finish_reason))
    return {
        "id": id or f"chatcmpl-{uuid.uuid4().hex}",
        "choices": [choice],
        "created": int(time.time()) if created is None else created,
        "model": model.id,
        "object": "chat.completion",
        "usage": gen.usage(model),
    }


def stream_chunks(
    model: FakeModel,
    gen: Generation,
    *,
    include_usage: bool = True,
    continuous_usage: bool = True,
    id: str | None = None,
    created: int | None = None,
    finish_before_content: bool = False,
) -> list[JsonObject]:
    """The chunk sequence of a Baseten stream (without the `[DONE]` sentinel)."""
    chunk_id = id or f"chatcmpl-{uuid.uuid4().hex}"
    stamp = int(time.time()) if created is None else created
    nulls = model.nulls

    def chunk(choices: list[JsonObject], usage: JsonObject | None) -> JsonObject:
        out: JsonObject = {"id": chunk_id, "choices": choices, "created": stamp, "model": model.id}
        if nulls:
            out["service_tier"] = None
            out["system_fingerprint"] = None
        out["object"] = "chat.completion.chunk"
        out["usage"] = usage
        return out

    def delta(upto: int, **fields: Any) -> JsonObject:
        body = {**_NULL_DELTA, **fields} if nulls else fields
        return chunk([{"index": 0, "delta": body}], gen.usage(model, upto) if continuous_usage else None)

    chunks = [delta(0, role="assistant")]
    emitted = 0
    for piece in gen.reasoning_pieces:
        emitted += 1
        chunks.append(delta(emitted, reasoning_content=piece))
    for piece in gen.content_pieces or ():
        emitted += 1
        chunks.append(delta(emitted, content=piece))
    for index, (call, fragments) in enumerate(zip(gen.tool_calls or (), gen.tool_fragments, strict=True)):
        head = {"index": index, "id": call["id"], "type": "function"}
        opening = {"name": call["function"]["name"], "arguments": ""}
        chunks.append(delta(emitted, tool_calls=[{**head, "function": opening}]))
        for fragment in fragments:
            emitted += 1
            more: FunctionCall = {"name": None, "arguments": fragment}
            chunks.append(delta(emitted, tool_calls=[{**head, "function": more}]))
    empty = dict(_NULL_DELTA) if nulls else {}
    finish_choice: JsonObject = {"index": 0, "delta": empty, "finish_reason": gen.finish_reason}
    finish_choice.update(_choice_extras(model, gen.finish_reason))
    finish = chunk([finish_choice], gen.usage(model) if continuous_usage else None)
    if finish_before_content and gen.content_pieces:
        last = chunks.pop()
        last["usage"] = None
        chunks += [finish, last]
    else:
        chunks.append(finish)
    if include_usage:
        chunks.append(chunk([], gen.usage(model)))
    return chunks


def _mergeable(chunk: JsonObject) -> tuple[str, JsonObject] | None:
    """(kind, delta) for a chunk carrying one text fragment, the only chunks a bigger step may join."""
    choices: list[JsonObject] = chunk.get("choices") or []
    if len(choices) != 1 or choices[0].get("finish_reason") is not None:
        return None
    delta = choices[0].get("delta") or {}
    if delta.get("role") is not None:
        return None
    if delta.get("tool_calls"):
        calls = delta["tool_calls"]
        if len(calls) == 1 and calls[0]["function"].get("name") is None:
            return f"tool:{calls[0]['id']}", delta
        return None
    for key in ("reasoning_content", "content"):
        if isinstance(delta.get(key), str):
            return key, delta
    return None


def coalesce_chunks(chunks: list[JsonObject], tokens_per_chunk: int) -> list[JsonObject]:
    """Join runs of same-kind single-token chunks, `tokens_per_chunk` at a time (usage of the last)."""
    if tokens_per_chunk <= 1:
        return chunks
    out: list[JsonObject] = []
    run_kind: str | None = None
    run_len = 0
    for chunk in chunks:
        found = _mergeable(chunk)
        if found is None:
            out.append(chunk)
            run_kind, run_len = None, 0
            continue
        kind, delta = found
        if kind == run_kind and run_len < tokens_per_chunk:
            last = out[-1]
            last_delta = last["choices"][0]["delta"]
            if kind.startswith("tool:"):
                added = delta["tool_calls"][0]["function"]["arguments"]
                last_delta["tool_calls"][0]["function"]["arguments"] += added
            else:
                last_delta[kind] += delta[kind]
            last["usage"] = chunk["usage"]
            run_len += 1
            continue
        out.append(_copy_chunk(chunk))
        run_kind, run_len = kind, 1
    return out


def _copy_chunk(chunk: JsonObject) -> JsonObject:
    # Deep enough that joining text into the copy never alters the caller's list.
    copied: JsonObject = json.loads(json.dumps(chunk))
    return copied
