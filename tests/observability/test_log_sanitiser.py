"""The one-pass log sanitiser gives the same fields as the three processors it replaced (redact by
name and key shape, the operator's secrets, then bounds), on any event a caller could log."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.typing import EventDict, Processor, WrappedLogger

from service.observability.logging import (
    _KEY_PATTERN,
    _SAFE_FIELDS,
    _SECRET_FIELDS,
    _bounded,
    _bounded_traceback,
    _sanitiser,
)

SECRETS = ("admin-token-0123456789", "bt_live_abcdefgh", "short")


# ---- the replaced chain, kept here as the reference ------------------------------------------------
def _redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key in list(event_dict):
        if key in _SAFE_FIELDS:
            continue
        if _SECRET_FIELDS.search(key):
            event_dict[key] = "[redacted]"
        else:
            value = event_dict[key]
            if isinstance(value, str) and ("sk-sy-" in value or "xpay_sk_" in value or "orth_" in value):
                event_dict[key] = _KEY_PATTERN.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", value)
    return event_dict


def _known_secrets(values: Iterable[str]) -> Processor:
    secrets = tuple(sorted({v for v in values if v and len(v) >= 8}, key=len, reverse=True))

    def processor(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            if isinstance(value, str):
                redacted = value
                for secret in secrets:
                    if secret in redacted:
                        redacted = redacted.replace(secret, "[redacted]")
                event_dict[key] = redacted
        return event_dict

    return processor


def _bound_lengths(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if key == "exception" and isinstance(value, str):
            event_dict[key] = _bounded_traceback(value)
        elif not isinstance(value, (int, float, bool)) and value is not None:
            event_dict[key] = _bounded(value)
    return event_dict


def _reference(event: EventDict) -> EventDict:
    out = _redact(None, "info", event)
    out = _known_secrets(SECRETS)(None, "info", out)
    return _bound_lengths(None, "info", out)


# ---- events: our field names and any others, values with secrets, key shapes, long strings ----------
_pieces = st.sampled_from(["", "hi ", "sk-sy-ABCDEFGHIJKLMNOP", "xpay_sk_live_123", "orth_live_zzz9",
                           "admin-token-0123456789", "bt_live_abcdefgh", "x" * 300, "\n  File x, line 3\n"])
_text = st.lists(_pieces, max_size=4).map("".join) | st.text(max_size=40)
_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                      max_leaves=8)
_names = st.sampled_from([*sorted(_SAFE_FIELDS), "api_key", "authorization", "token", "token_count",
                          "prompt_tokens_est", "password", "exception", "path", "error", "key", "note"]) | st.text(
    "abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_names, _value, max_size=8))
def test_the_sanitiser_matches_the_processors_it_replaced(event: EventDict) -> None:
    expected = _reference(copy.deepcopy(event))
    assert _sanitiser(SECRETS)(None, "info", copy.deepcopy(event)) == expected
