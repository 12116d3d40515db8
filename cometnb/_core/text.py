"""Small text helpers every layer uses for what it shows people."""

from __future__ import annotations

__all__ = ["clip"]

ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut.

    Example::

        >>> clip("a red fox asleep", 8)
        'a red f…'
    """
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS
