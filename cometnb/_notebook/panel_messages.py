"""Short, safe messages for the panel: one line per error, never a traceback, never the key."""

from __future__ import annotations

import html

from cometnb._core.errors import CometError, redact
from cometnb._core.text import clip

__all__ = ["message_html", "short_message"]

MAX_CHARS = 300


def short_message(exc: BaseException) -> str:
    """One readable line for ``exc``; unexpected errors are named by type.

    Example::

        >>> short_message(ValueError("bad"))
        'Unexpected error (ValueError): bad'
    """
    if isinstance(exc, CometError):
        text = str(exc)
    else:
        text = f"Unexpected error ({type(exc).__name__}): {exc}"
    return clip(redact(" ".join(text.split())), MAX_CHARS)


def message_html(text: str, kind: str = "error") -> str:
    """``text`` escaped and coloured for the panel's message line."""
    colour = {"error": "#b00020", "ok": "#1b5e20"}.get(kind, "#333")
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"
