"""State one Messages-request translation gathers besides the chat body: dropped paths, tool names."""

from __future__ import annotations

import hashlib
import re

from service.chat.validate_types import bad_value
from service.inbound.messages_ignored import IGNORED_FIELDS

# Chat Completions function names (OpenAI's rule, enforced by the chat validator). Anthropic allows
# longer names (MCP tools in Claude Code are `mcp__<server>__<tool>`), so those get an alias.
_CHAT_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_-]")
_ALIAS_STEM_CHARS = 55  # + "_" + 8 hex digits = 64


def chat_tool_name(name: str) -> str:
    """The Chat Completions name for an Anthropic tool name: itself when valid, else a stable alias."""
    if _CHAT_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{_NOT_NAME_CHAR.sub('_', name)[:_ALIAS_STEM_CHARS]}_{digest}"


class Translation:
    """Collects what `messages_to_chat` dropped and the tool names it had to alias."""

    __slots__ = ("_client_names", "ignored")

    def __init__(self) -> None:
        self.ignored: list[str] = []
        self._client_names: dict[str, str] = {}  # chat name -> the client's name

    def ignore(self, path: str, field: str) -> None:
        """Record that the value at `path` was accepted and dropped, for the reason `field` names."""
        if field not in IGNORED_FIELDS:
            raise KeyError(f"{field!r} has no reason in IGNORED_FIELDS")
        self.ignored.append(path)

    def chat_name(self, name: str, param: str) -> str:
        """The chat name for a client tool name, remembering the alias so answers can undo it."""
        alias = chat_tool_name(name)
        known = self._client_names.setdefault(alias, name)
        if known != name:
            raise bad_value(param, f"the tool names {known!r} and {name!r} cannot both be used here.")
        return alias

    def aliases(self) -> dict[str, str]:
        """Chat name -> client name, for the names that differ."""
        return {chat: client for chat, client in self._client_names.items() if chat != client}
