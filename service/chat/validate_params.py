"""Checks for the top-level parameters that routing does not read: each only accepts or refuses.

They are sampling and engine (vLLM / TRT-LLM) parameters from seed 002's schema, and OpenAI's
parameters that no route uses (what happens to each is in `service.chat.params`). Each check takes
(value, collected) like the view-feeding ones in `validate`, and ignores the second argument, so
one dispatch table serves every field. Parameters that are dropped are checked for their JSON type
only (OpenAI adds values to their enums, which must not start failing here), except where a
value would change the answer and cannot be honoured.
"""

from __future__ import annotations

from collections.abc import Callable

from service.chat.params import PARAMS, Fate
from service.chat.validate_types import (
    bad_value,
    check_array,
    check_bool,
    check_int,
    check_number,
    check_object,
    check_str,
    join,
    show,
    too_many,
    unsupported,
    unsupported_value,
    wrong_type,
)
from service.input_limits import check_storable

Check = Callable[[object, object], None]

MAX_OUTPUT_TOKENS = 262_144
MAX_TOKEN_ID = 2**31 - 1
# vLLM's sampling parameters are held as 32-bit integers; past the vocabulary or the context the
# value means no cut-off at all, so nothing a model can use is refused.
MAX_TOP_K = MAX_TRUNCATE_PROMPT_TOKENS = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_USER_CHARS = 512
VERBOSITIES = ("low", "medium", "high")
MODALITIES = ("text", "audio")


def _boolean(name: str) -> Check:
    def check(value: object, _got: object) -> None:
        check_bool(value, name)

    return check


def _string(name: str) -> Check:
    def check(value: object, _got: object) -> None:
        check_str(value, name)

    return check


def _refused(name: str) -> Check:
    why = PARAMS[name].why

    def check(_value: object, _got: object) -> None:
        raise unsupported(name, why)

    return check


def _object(name: str) -> Check:
    def check(value: object, _got: object) -> None:
        check_object(value, name)

    return check


def _integer(name: str, lo: int | None = None, hi: int | None = None) -> Check:
    def check(value: object, _got: object) -> None:
        check_int(value, name, lo, hi)

    return check


def _number(name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Check:
    def check(value: object, _got: object) -> None:
        check_number(value, name, lo, hi, lo_open=lo_open)

    return check


def _exactly_one(name: str) -> Check:
    def check(value: object, _got: object) -> None:
        check_int(value, name)
        if value != 1:
            raise bad_value(name, f"only 1 is supported, but got {show(value)}.")

    return check


def _token_ids(name: str) -> Check:
    def check(value: object, _got: object) -> None:
        if not isinstance(value, list):
            raise wrong_type(name, "an array of integers", value)
        for index, token in enumerate(value):
            if type(token) is not int or not 0 <= token <= MAX_TOKEN_ID:
                check_int(token, f"{name}[{index}]", 0, MAX_TOKEN_ID)

    return check


def _top_k(value: object, _got: object) -> None:
    check_int(value, "top_k", -1, MAX_TOP_K)
    if value == 0:
        raise bad_value("top_k", "expected -1 (disabled) or a value >= 1, but got 0 instead.")


def _logit_bias(value: object, _got: object) -> None:
    biases = check_object(value, "logit_bias")
    for token, bias in biases.items():
        if not _is_token_id(token):
            raise bad_value(
                "logit_bias",
                f"keys must be token ids (non-negative integers as strings), but got {show(token)}.",
            )
        check_number(bias, f"logit_bias.{token}", -100, 100)


def _is_token_id(key: object) -> bool:
    # isdigit alone accepts other scripts' digits, which int() would read but no tokenizer uses.
    if type(key) is not str or not 0 < len(key) <= 10 or not (key.isascii() and key.isdigit()):
        return False
    return int(key) <= MAX_TOKEN_ID


def _metadata(value: object, _got: object) -> None:
    pairs = check_object(value, "metadata")
    if len(pairs) > MAX_METADATA_PAIRS:
        raise too_many("metadata", MAX_METADATA_PAIRS, len(pairs), "pairs")
    for key, item in pairs.items():
        if type(key) is not str or len(key) > MAX_METADATA_KEY_CHARS:
            limit = MAX_METADATA_KEY_CHARS
            raise bad_value("metadata", f"keys must be strings of at most {limit} characters.")
        # Both are kept with the request's usage: text the database can store.
        check_storable(key, "metadata")
        if key == "tags":
            continue  # LiteLLM's tags may be a list: service.gateway.attribution bounds them
        check_str(item, join("metadata", key), max_len=MAX_METADATA_VALUE_CHARS, stored=True)


def _user(value: object, _got: object) -> None:
    check_str(value, "user", max_len=MAX_USER_CHARS, stored=True)


def _verbosity(value: object, _got: object) -> None:
    if value == "medium":
        return
    check_str(value, "verbosity")
    if value not in VERBOSITIES:
        raise bad_value("verbosity", f"{show(value)}. Supported values are: 'low', 'medium', and 'high'.")
    raise unsupported_value("verbosity", value, "open models answer at their own length ('medium'); ask "
                            "for the length in the prompt and bound it with max_tokens")


def _modalities(value: object, _got: object) -> None:
    for index, kind in enumerate(check_array(value, "modalities", max_items=len(MODALITIES))):
        if kind == "text":
            continue
        param = f"modalities[{index}]"
        check_str(kind, param)
        if kind == "audio":
            raise unsupported_value(param, kind, "no route produces audio output; send ['text'] or omit it")
        raise bad_value(param, f"{show(kind)}. Supported values are: 'text' and 'audio'.")


def _prediction(value: object, _got: object) -> None:
    prediction = check_object(value, "prediction")
    content = prediction.get("content")
    if content is not None and type(content) is not str and not isinstance(content, list):
        raise wrong_type("prediction.content", "a string or an array of text parts", content)


def _documents(value: object, _got: object) -> None:
    if not isinstance(value, list):
        raise wrong_type("documents", "an array of objects", value)
    for index, document in enumerate(value):
        entries = check_object(document, f"documents[{index}]")
        for key, text in entries.items():
            if type(text) is not str:
                raise wrong_type(join(f"documents[{index}]", key), "a string", text)


def _bad(value: object, _got: object) -> None:
    if type(value) is str:
        return
    if not isinstance(value, list):
        raise wrong_type("bad", "a string or an array of strings", value)
    for index, word in enumerate(value):
        check_str(word, f"bad[{index}]")


def stateless_checks() -> dict[str, Check]:
    """The checks of every parameter routing does not read, by name."""
    return {
        "frequency_penalty": _number("frequency_penalty", -2, 2),
        "presence_penalty": _number("presence_penalty", -2, 2),
        "logit_bias": _logit_bias,
        "n": _exactly_one("n"),
        "best_of": _exactly_one("best_of"),
        "seed": _integer("seed", INT64_MIN, INT64_MAX),
        "temperature": _number("temperature", 0, 4),
        "top_p": _number("top_p", 0, 1, lo_open=True),
        "top_k": _top_k,
        "top_p_min": _number("top_p_min", 0, 1),
        "min_p": _number("min_p", 0, 1),
        "repetition_penalty": _number("repetition_penalty", 0, lo_open=True),
        "length_penalty": _number("length_penalty"),
        "min_tokens": _integer("min_tokens", 0, MAX_OUTPUT_TOKENS),
        "truncate_prompt_tokens": _integer("truncate_prompt_tokens", 1, MAX_TRUNCATE_PROMPT_TOKENS),
        "parallel_tool_calls": _boolean("parallel_tool_calls"),
        "early_stopping": _boolean("early_stopping"),
        "include_stop_str_in_output": _boolean("include_stop_str_in_output"),
        "ignore_eos": _boolean("ignore_eos"),
        "skip_special_tokens": _boolean("skip_special_tokens"),
        "spaces_between_special_tokens": _boolean("spaces_between_special_tokens"),
        "echo": _boolean("echo"),
        "add_generation_prompt": _boolean("add_generation_prompt"),
        "add_special_tokens": _boolean("add_special_tokens"),
        "bad": _bad,
        "bad_token_ids": _token_ids("bad_token_ids"),
        "stop_token_ids": _token_ids("stop_token_ids"),
        "documents": _documents,
        "user": _user,
        "chat_template": _string("chat_template"),
        "disaggregated_params": _object("disaggregated_params"),
        "metadata": _metadata,
        # OpenAI's parameters that no route uses (see service.chat.params).
        "store": _boolean("store"),
        "service_tier": _string("service_tier"),
        "prompt_cache_key": _string("prompt_cache_key"),
        "prompt_cache_retention": _string("prompt_cache_retention"),
        "prompt_cache_options": _object("prompt_cache_options"),
        "safety_identifier": _string("safety_identifier"),
        "prediction": _prediction,
        "modalities": _modalities,
        "verbosity": _verbosity,
        **{name: _refused(name) for name, param in PARAMS.items() if param.fate is Fate.REFUSED},
    }
