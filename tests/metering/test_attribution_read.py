"""read_attribution: the end user, tags and metadata of a chat body and its headers, and their bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.chat.validate import validate_chat_request
from service.errors import GatewayError
from service.gateway.attribution import (
    MAX_END_USER_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    TAGS_HEADER,
    Attribution,
    read_attribution,
)
from service.gateway.context import RequestContext
from tests.money.harness import MODEL


def _refused(body: dict, headers: dict | None = None) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        read_attribution(body, headers or {})
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


def test_user_tags_and_metadata_from_body_and_header():
    got = read_attribution(
        {"user": "u-42", "metadata": {"tags": ["search", "beta"], "team": "core", "ticket": "T-1"}},
        {TAGS_HEADER: " beta, nightly ,, "})
    # Tags keep their first-seen order, once each; the header adds to metadata.tags.
    assert got == Attribution("u-42", ("search", "beta", "nightly"), {"team": "core", "ticket": "T-1"})


def test_tags_as_a_comma_separated_string_and_nothing_else():
    got = read_attribution({"metadata": {"tags": "a,b , a"}}, {})
    assert got == Attribution(None, ("a", "b"), None)  # metadata holding only tags stores no pairs
    assert read_attribution({}, {}) == Attribution()
    assert read_attribution({"user": "", "metadata": {}}, {}) == Attribution()


def test_apply_sets_the_request_context(principal_stub):
    ctx = RequestContext(request_id="r", principal=principal_stub, requested_model=MODEL, stream=False)
    Attribution("u", ("t",), {"k": "v"}).apply(ctx)
    assert (ctx.end_user, ctx.tags, ctx.metadata) == ("u", ("t",), {"k": "v"})


@pytest.mark.parametrize(("body", "headers", "param"), [
    ({"user": 7}, {}, "user"),
    ({"user": "x" * (MAX_END_USER_CHARS + 1)}, {}, "user"),
    ({"metadata": "team=core"}, {}, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, {}, "metadata"),
    ({"metadata": {"k" * 65: "v"}}, {}, "metadata"),
    ({"metadata": {"team": "v" * 513}}, {}, "metadata.team"),
    ({"metadata": {"team": 3}}, {}, "metadata.team"),
    ({"metadata": {"tags": {"a": 1}}}, {}, "metadata.tags"),
    ({"metadata": {"tags": ["ok", 3]}}, {}, "metadata.tags"),
    ({"metadata": {"tags": ["a,b"]}}, {}, "metadata.tags"),
    ({"metadata": {"tags": ["t" * (MAX_TAG_CHARS + 1)]}}, {}, "metadata.tags"),
    ({"metadata": {"tags": ["tab\there"]}}, {}, "metadata.tags"),
    ({"metadata": {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}}, {}, "metadata.tags"),
    ({}, {TAGS_HEADER: ",".join(f"t{i}" for i in range(MAX_TAGS + 1))}, TAGS_HEADER),
    ({"metadata": {"tags": [f"m{i}" for i in range(10)]}}, {TAGS_HEADER: ",".join(f"h{i}" for i in range(7))},
     TAGS_HEADER),
    ({}, {TAGS_HEADER: "ok," + "t" * (MAX_TAG_CHARS + 1)}, TAGS_HEADER),
])
def test_bounds_are_400s_naming_the_field(body, headers, param):
    assert _refused(body, headers).param == param


def test_exactly_at_the_bounds_is_accepted():
    tags = [f"{i:02d}" + "t" * (MAX_TAG_CHARS - 2) for i in range(MAX_TAGS)]
    body = {"user": "u" * MAX_END_USER_CHARS,
            "metadata": {"tags": tags, **{f"{i:02d}" + "k" * 62: "v" * 512 for i in range(15)}}}
    got = read_attribution(body, {TAGS_HEADER: ",".join(tags)})  # the same tags again: still 16
    assert got.tags == tuple(tags) and len(got.metadata or {}) == 15


def test_the_chat_validator_lets_list_tags_through():
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"tags": ["a", "b"], "team": "core"}, "user": "u-1"}
    validate_chat_request(body)
    assert read_attribution(body, {}).tags == ("a", "b")


_TAG = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"),
                             exclude_characters=","), min_size=1, max_size=MAX_TAG_CHARS)


@settings(max_examples=100, deadline=None)
@given(st.lists(_TAG, max_size=10), st.lists(_TAG, max_size=10), st.booleans())
def test_tags_are_the_stripped_union_in_order_within_bounds(body_tags, header_tags, as_string):
    sent = ",".join(body_tags) if as_string else body_tags
    try:
        got = read_attribution({"metadata": {"tags": sent}}, {TAGS_HEADER: ",".join(header_tags)})
    except GatewayError as err:
        refused: GatewayError | None = err
    else:
        refused = None
    if refused is not None:
        # Refused only for a bound: more than MAX_TAGS distinct tags, or a tag that is not printable.
        wanted = [t.strip() for t in [*body_tags, *header_tags] if t.strip()]
        assert len(dict.fromkeys(wanted)) > MAX_TAGS or not all(t.isprintable() for t in wanted)
        assert refused.param in ("metadata.tags", TAGS_HEADER)
        return
    expected = tuple(dict.fromkeys(t.strip() for t in [*body_tags, *header_tags] if t.strip()))
    assert got.tags == expected
    assert all(t and t == t.strip() and "," not in t and len(t) <= MAX_TAG_CHARS for t in got.tags)


@pytest.fixture
def principal_stub():
    import uuid
    from decimal import Decimal

    from service.auth.principal import Principal

    return Principal(tenant_id=uuid.uuid4(), tenant_name="t", key_id=uuid.uuid4(), key_prefix="sk-sy-test",
                     markup=Decimal(0), allowed_models=None, denied_front_ends=frozenset())
