"""The usage console in the browser (/console): sessions, its JSON views, the page and its assets."""

from __future__ import annotations

from service.console.handlers import CONSOLE_HANDLERS

__all__ = ["CONSOLE_HANDLERS"]
