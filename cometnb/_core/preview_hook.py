"""The one late-bound service images need: a preview the history named but has not made yet.

The history writes an image's preview after its record commits (off the request path), so a
:class:`~cometnb._core.generations.GeneratedImage` may be shown before its preview file exists.
Storage installs the maker (:func:`install`) when it loads; the core only asks
(:func:`missing_preview`). This module imports nothing from cometnb, so the core's models can
use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["install", "missing_preview"]

_maker: Callable[[Path, Path], bytes | None] | None = None


def install(maker: Callable[[Path, Path], bytes | None]) -> None:
    """``maker(original, preview)`` returns the preview's bytes, making it if needed."""
    global _maker
    _maker = maker


def missing_preview(original: Path, preview: Path) -> bytes | None:
    """The bytes of a named but not yet written preview; ``None`` when none can be made."""
    return None if _maker is None else _maker(original, preview)
