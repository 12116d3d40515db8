"""The active history, for the core code that must find ``@-1`` without importing storage.

Edit sources (``@ID``, ``@-1``) are resolved in the core, but the history lives in the storage
layer above it; the package root installs a lookup here (re-exported by :mod:`hooks`). This
module imports nothing, so anything in the core may use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["active_history", "history_at", "install_history_lookup"]

_history_lookup: Callable[[Any], Any] | None = None


def install_history_lookup(lookup: Callable[[Any], Any]) -> None:
    """``lookup(path)`` returns the history at ``path`` (``None``: the active one); edit
    sources such as ``@-1`` and ``Record.edit`` find their history through it."""
    global _history_lookup
    _history_lookup = lookup


def active_history() -> Any | None:
    """The active history, or ``None`` when no lookup is installed."""
    return _history_lookup(None) if _history_lookup is not None else None


def history_at(path: Any) -> Any:
    """The history whose folder is ``path`` (one instance per folder, as ``history(path)``)."""
    if _history_lookup is None:
        raise RuntimeError("no history lookup is installed")
    return _history_lookup(path)
