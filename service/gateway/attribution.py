"""Who and what a request is for, as the client names it: its end user, tags and metadata pairs.

Read from the Chat Completions body every inbound API is translated into, and from the request
headers: OpenAI's `user` (the end user) and `metadata` (string pairs, within OpenAI's bounds), tags
as LiteLLM's users send them (`metadata.tags`, a list of strings or one comma-separated string)
and as an `x-switchyard-tags` header (comma-separated). Everything is bounded here because it is
stored on every usage row and grouped by: a value past a bound is a 400 naming the field, never a
silent truncation. Nothing here keeps state per user or tag, so their number costs the hot path
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.errors import invalid
from service.gateway.context import RequestContext

TAGS_HEADER = "x-switchyard-tags"
# OpenAI's bounds on `metadata`.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_END_USER_CHARS = 256
MAX_TAGS = 16
MAX_TAG_CHARS = 64
_TAGS_KEY = "tags"


@dataclass(frozen=True, slots=True)
class Attribution:
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] | None = None  # the pairs other than `tags`; None when there are none

    def apply(self, ctx: RequestContext) -> None:
        ctx.end_user, ctx.tags, ctx.metadata = self.end_user, self.tags, self.metadata


def read_attribution(body: Mapping[str, object], headers: Mapping[str, str]) -> Attribution:
    """The end user, tags and metadata of a Chat Completions body and its request's headers
    (names in lower case, as ASGI gives them); GatewayError 400 with the offending param."""
    end_user = _end_user(body.get("user"))
    metadata, body_tags = _metadata(body.get("metadata"))
    header = headers.get(TAGS_HEADER)
    header_tags = _split(header, TAGS_HEADER) if header is not None else []
    tags = tuple(dict.fromkeys([*body_tags, *header_tags]))
    if len(tags) > MAX_TAGS:
        param = TAGS_HEADER if header_tags else "metadata.tags"
        raise invalid(f"A request takes at most {MAX_TAGS} distinct tags (from `metadata.tags` and the"
                      f" `{TAGS_HEADER}` header together), got {len(tags)}.", param)
    return Attribution(end_user, tags, metadata)


def _end_user(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("`user` must be a string identifying the end user.", "user", code="invalid_type")
    if len(value) > MAX_END_USER_CHARS:
        raise invalid(f"`user` is at most {MAX_END_USER_CHARS} characters, got {len(value)}.", "user")
    return value or None


def _metadata(value: object) -> tuple[dict[str, str] | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, dict):
        raise invalid("`metadata` must be an object of string values.", "metadata", code="invalid_type")
    if len(value) > MAX_METADATA_PAIRS:
        raise invalid(f"`metadata` takes at most {MAX_METADATA_PAIRS} pairs, got {len(value)}.", "metadata")
    pairs: dict[str, str] = {}
    tags: list[str] = []
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > MAX_METADATA_KEY_CHARS:
            raise invalid(f"`metadata` keys are strings of at most {MAX_METADATA_KEY_CHARS} characters.",
                          "metadata")
        if key == _TAGS_KEY:
            tags = _tags(item)
            continue
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_CHARS:
            raise invalid(f"`metadata.{key}` must be a string of at most {MAX_METADATA_VALUE_CHARS} characters.",
                          f"metadata.{key}")
        pairs[key] = item
    return pairs or None, tags


def _tags(value: object) -> list[str]:
    param = "metadata.tags"
    if isinstance(value, str):
        return _split(value, param)
    if not isinstance(value, list):
        raise invalid("`metadata.tags` must be a list of strings or a comma-separated string.", param,
                      code="invalid_type")
    out: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid(f"`metadata.tags[{index}]` must be a string.", param, code="invalid_type")
        if "," in item:
            raise invalid(f"`metadata.tags[{index}]` may not contain a comma (commas separate tags).", param)
        tag = _tag(item, param)
        if tag:
            out.append(tag)
    return out


def _split(value: str, param: str) -> list[str]:
    return [tag for part in value.split(",") if (tag := _tag(part, param))]


def _tag(raw: str, param: str) -> str:
    tag = raw.strip()
    if len(tag) > MAX_TAG_CHARS:
        raise invalid(f"A tag is at most {MAX_TAG_CHARS} characters; {tag[:20]!r}... has {len(tag)}.", param)
    if not tag.isprintable():
        raise invalid("Tags may hold printable characters only.", param)
    return tag

