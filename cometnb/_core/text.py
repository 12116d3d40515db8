"""Small text helpers every layer uses for what it shows people."""

from __future__ import annotations

__all__ = ["clip"]

ELLIPSIS = "…"


def clip(text: str, limit: int, *, at_word: bool = False) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut.

    ``at_word`` cuts at the last space that keeps at least half of ``limit`` (a label reads
    "a red fox…", not "a red f…"); a text without such a space is cut where it must be.

    Example::

        >>> clip("a red fox asleep", 8), clip("a red fox asleep", 12, at_word=True)
        ('a red f…', 'a red fox…')
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    if at_word:
        space = cut.rfind(" ")
        if space >= limit // 2:
            cut = cut[:space].rstrip()
    return cut + ELLIPSIS
