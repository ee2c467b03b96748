"""Bad messages (roles, content parts, tool calls): each gets a 400 naming the message's path."""

from __future__ import annotations

import pytest

from .bodies import assert_rejected, minimal, user, with_fields, with_messages

TEXT_SYSTEM = {"role": "system", "content": "Be brief."}
CALL = {"id": "c1", "type": "function", "function": {"name": "square_root", "arguments": "{}"}}


def _assistant(**fields: object) -> dict:
    return {"role": "assistant", **fields}


def _image(**image_url: object) -> dict:
    return {"type": "image_url", "image_url": image_url}


def _audio(**input_audio: object) -> dict:
    return {"type": "input_audio", "input_audio": input_audio}


def _without(key: str) -> dict:
    body = minimal()
    del body[key]
    return body


# (id, body, param, message fragment, code); every row answers status 400.
MESSAGE_CASES = [
    ("messages-missing", _without("messages"), "messages", "Missing required parameter: 'messages'",
     "missing_required_parameter"),
    ("messages-empty", with_fields(messages=[]), "messages", "empty array", "empty_array"),
    ("messages-string", with_fields(messages="hi"), "messages", "expected an array", "invalid_type"),
    ("messages-too-many", with_fields(messages=[user()] * 10_001), "messages", "at most 10000", "too_many"),
    ("message-not-object", with_messages(user(), "hi"), "messages[1]", "expected an object", "invalid_type"),
    ("role-unknown", with_messages(TEXT_SYSTEM, user(), {"role": "bogus", "content": "x"}),
     "messages[2].role",
     "'bogus'. Supported values are: 'system', 'user', 'assistant', 'tool', and 'developer'",
     "invalid_value"),
    ("role-function", with_messages({"role": "function", "content": "x", "name": "f"}), "messages[0].role",
     "Supported values", "invalid_value"),
    ("role-missing", with_messages({"content": "x"}), "messages[0].role", "Missing required parameter",
     "missing_required_parameter"),
    ("role-int", with_messages({"role": 1, "content": "x"}), "messages[0].role", "expected a string",
     "invalid_type"),
    ("message-unknown-key", with_messages(user(foo=1)), "messages[0].foo",
     "Unrecognized request argument supplied: messages[0].foo", "unknown_parameter"),
    ("tool-call-id-on-user", with_messages(user(tool_call_id="x")), "messages[0].tool_call_id",
     "Unrecognized request argument", "unknown_parameter"),
    ("user-content-missing", with_messages({"role": "user"}), "messages[0].content",
     "Missing required parameter",
     "missing_required_parameter"),
    ("user-content-int", with_messages(user(5)), "messages[0].content",
     "expected a string or an array of content parts", "invalid_type"),
    ("user-content-empty-list", with_messages(user([])), "messages[0].content", "empty array", "empty_array"),
    ("part-not-object", with_messages(user(["hi"])), "messages[0].content[0]", "expected an object",
     "invalid_type"),
    ("part-type-unknown", with_messages(user([{"type": "video", "video": {}}])),
     "messages[0].content[0].type",
     "'video'. Supported values are: 'text', 'image_url', and 'input_audio'", "invalid_value"),
    ("part-type-missing", with_messages(user([{"text": "x"}])), "messages[0].content[0].type",
     "Missing required parameter", "missing_required_parameter"),
    ("text-part-no-text", with_messages(user([{"type": "text"}])), "messages[0].content[0].text",
     "Missing required parameter", "missing_required_parameter"),
    ("text-part-unknown-key", with_messages(user([{"type": "text", "text": "x", "cache_control": {}}])),
     "messages[0].content[0].cache_control", "Unrecognized request argument", "unknown_parameter"),
    ("image-on-system", with_messages({"role": "system", "content": [_image(url="https://x/y.png")]}),
     "messages[0].content[0].type", "Supported values are: 'text'", "invalid_value"),
    ("image-on-assistant", with_messages(user(), _assistant(content=[_image(url="https://x/y.png")])),
     "messages[1].content[0].type", "Supported values are: 'text'", "invalid_value"),
    ("image-url-missing", with_messages(user([_image(detail="low")])), "messages[0].content[0].image_url.url",
     "Missing required parameter", "missing_required_parameter"),
    ("image-url-empty", with_messages(user([_image(url="")])), "messages[0].content[0].image_url.url",
     "cannot be empty", "empty_string"),
    ("image-detail", with_messages(user([_image(url="https://x/y.png", detail="ultra")])),
     "messages[0].content[0].image_url.detail", "'ultra'. Supported values are: 'auto', 'low', and 'high'",
     "invalid_value"),
    ("image-url-not-object", with_messages(user([{"type": "image_url", "image_url": "https://x/y.png"}])),
     "messages[0].content[0].image_url", "expected an object, but got a string", "invalid_type"),
    ("audio-format", with_messages(user([_audio(data="UklG", format="ogg")])),
     "messages[0].content[0].input_audio.format", "Supported values are: 'wav', and 'mp3'", "invalid_value"),
    ("audio-data-empty", with_messages(user([_audio(data="", format="wav")])),
     "messages[0].content[0].input_audio.data", "cannot be empty", "empty_string"),
    ("audio-unknown-key", with_messages(user([_audio(data="UklG", format="wav", rate=16000)])),
     "messages[0].content[0].input_audio.rate", "Unrecognized request argument", "unknown_parameter"),
    ("assistant-no-content", with_messages(user(), _assistant()), "messages[1].content",
     "Missing required parameter", "missing_required_parameter"),
    ("assistant-null-content", with_messages(user(), _assistant(content=None)), "messages[1].content",
     "Missing required parameter", "missing_required_parameter"),
    ("tool-calls-empty", with_messages(user(), _assistant(tool_calls=[])), "messages[1].tool_calls",
     "empty array", "empty_array"),
    ("tool-call-type", with_messages(user(), _assistant(tool_calls=[{**CALL, "type": "custom"}])),
     "messages[1].tool_calls[0].type", "'custom'. Supported values are: 'function'", "invalid_value"),
    ("tool-call-id-missing", with_messages(user(), _assistant(tool_calls=[{"type": "function",
                                                                           "function": CALL["function"]}])),
     "messages[1].tool_calls[0].id", "Missing required parameter", "missing_required_parameter"),
    ("tool-call-arguments-object", with_messages(user(), _assistant(tool_calls=[
        {**CALL, "function": {"name": "f", "arguments": {"x": 1}}}])),
     "messages[1].tool_calls[0].function.arguments", "expected a string, but got an object", "invalid_type"),
    ("tool-call-name-empty", with_messages(user(), _assistant(tool_calls=[
        {**CALL, "function": {"name": "", "arguments": "{}"}}])),
     "messages[1].tool_calls[0].function.name", "cannot be empty", "empty_string"),
    ("reasoning-content-int", with_messages(user(), _assistant(content="x", reasoning_content=5)),
     "messages[1].reasoning_content", "expected a string", "invalid_type"),
    ("reasoning-content-on-user", with_messages(user(reasoning_content="x")), "messages[0].reasoning_content",
     "Unrecognized request argument", "unknown_parameter"),
    ("message-name-int", with_messages(user(name=5)), "messages[0].name", "expected a string",
     "invalid_type"),
    ("tool-message-no-call-id", with_messages(user(), {"role": "tool", "content": "4"}),
     "messages[1].tool_call_id", "Missing required parameter", "missing_required_parameter"),
    ("tool-message-empty-call-id", with_messages(user(), {"role": "tool", "content": "4",
     "tool_call_id": ""}),
     "messages[1].tool_call_id", "cannot be empty", "empty_string"),
    ("tool-message-no-content", with_messages(user(), {"role": "tool", "tool_call_id": "c1"}),
     "messages[1].content", "Missing required parameter", "missing_required_parameter"),
]


@pytest.mark.parametrize(
    ("body", "param", "fragment", "code"),
    [pytest.param(body, param, fragment, code, id=case_id) for case_id, body, param, fragment, code in MESSAGE_CASES],
)
def test_bad_message_is_a_400_naming_its_path(body, param, fragment, code):
    assert_rejected(body, param, fragment, code)
