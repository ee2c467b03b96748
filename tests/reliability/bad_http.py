"""Checks shared by the bad-input and fuzzing tests: OpenAI's error shape and a gateway still serving."""

from __future__ import annotations

import httpx

ERROR_KEYS = {"message", "type", "param", "code"}
HELLO = [{"role": "user", "content": "Say hello."}]
# The cheapest route of a model every stand-in serves: a normal request that touches an upstream.
NORMAL = {"model": "openai/gpt-oss-120b", "messages": HELLO, "provider": {"only": ["baseten"]}}


def openai_error(response: httpx.Response) -> dict:
    """The `error` object of an OpenAI-shaped error answer; fails the test on any other shape."""
    return error_object(response.headers.get("content-type", ""), response.json())


def error_object(content_type: str, body: object) -> dict:
    assert content_type.startswith("application/json"), content_type
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    return error


def assert_error(response: httpx.Response, status: int, *, param: str | None = None,
                 code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers.get("x-request-id"), "every answer carries x-request-id"
    error = openai_error(response)
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_still_serving(base_url: str, key: str) -> None:
    """A normal chat request succeeds on a fresh connection: the bad input harmed nothing."""
    with httpx.Client(base_url=base_url, timeout=20) as http:
        response = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=NORMAL)
    assert response.status_code == 200, response.text[:500]
    assert response.json()["choices"][0]["message"]["content"]
