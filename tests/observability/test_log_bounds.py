"""Strings a client chooses (a model name, an end user, tags, headers) reach the logs bounded in
length, whatever field or nesting carries them, with a marker saying how much was cut."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest
import structlog

from service.observability.logging import MAX_LOGGED_CHARS, configure_logging, flush_logs

HUGE = 100_000


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.BytesIO]:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8"))
    saved = structlog.get_config()
    configure_logging("INFO", json=True, secrets=["operator-admin-token-0123456789"])
    try:
        yield raw
    finally:
        flush_logs()
        structlog.configure(**saved)


def _lines(raw: io.BytesIO) -> list[dict]:
    flush_logs()
    return [json.loads(line) for line in raw.getvalue().decode().splitlines() if line.startswith("{")]


def test_huge_client_strings_are_cut_with_a_marker(log_output: io.BytesIO) -> None:
    structlog.get_logger("t").info(
        "request", requested_model="m" * HUGE, end_user="u" * HUGE, tags=["t" * HUGE, "short"],
        headers={"user-agent": "a" * HUGE, "x-custom": "ok"}, note="fine")
    (line,) = _lines(log_output)
    assert len(json.dumps(line)) < 4 * 1024
    for value in (line["requested_model"], line["end_user"], line["tags"][0], line["headers"]["user-agent"]):
        assert len(value) <= MAX_LOGGED_CHARS + 40
        assert value.endswith(f"[truncated {HUGE - MAX_LOGGED_CHARS} chars]")
    assert line["requested_model"].startswith("m" * MAX_LOGGED_CHARS)
    assert line["tags"][1] == "short"
    assert line["headers"]["x-custom"] == "ok"
    assert line["note"] == "fine"


def test_a_secret_is_redacted_before_it_could_be_cut_in_half(log_output: io.BytesIO) -> None:
    """Cutting first could leave a secret's first half, which no redaction would recognise."""
    secret = "operator-admin-token-0123456789"
    structlog.get_logger("t").info("odd", detail="x" * (MAX_LOGGED_CHARS - 10) + secret + "y" * HUGE,
                                   key="sk-sy-" + "k" * 300)
    (line,) = _lines(log_output)
    assert "operator-a" not in line["detail"]
    assert "kkkkkkkk" not in line["key"]


def test_an_exception_keeps_a_useful_traceback_but_not_an_unbounded_one(log_output: io.BytesIO) -> None:
    try:
        raise ValueError("bad model " + "m" * HUGE)
    except ValueError:
        structlog.get_logger("t").exception("failed")
    (line,) = _lines(log_output)
    assert "Traceback" in line["exception"]
    assert "ValueError" in line["exception"]
    assert len(line["exception"]) < 20_000
