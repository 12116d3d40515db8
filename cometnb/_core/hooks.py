"""Late-bound services that lower layers call but must not import.

``History.rerun`` sends requests and records display themselves, yet the client and the views
sit above storage. So the lower layers ask this module, and ``cometnb/__init__.py`` installs the
implementations lazily (the first call imports them). Tests may install stand-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cometnb._core.display import install_view_loader, register_view, render
from cometnb._core.lookups import active_history, install_history_lookup
from cometnb._core.protocols import Runner

__all__ = [
    "active_history",
    "install_history_lookup",
    "install_runner_factory",
    "install_view_loader",
    "new_runner",
    "register_view",
    "render",
]

_runner_factory: Callable[[Any], Runner] | None = None


def install_runner_factory(factory: Callable[[Any], Runner]) -> None:
    """``factory(history)`` returns a :class:`Runner` that stores into ``history``."""
    global _runner_factory
    _runner_factory = factory


def new_runner(history: Any) -> Runner:
    """A runner storing into ``history`` (the default client, as installed by the package)."""
    if _runner_factory is None:
        raise RuntimeError("no default runner is installed; pass client=…")
    return _runner_factory(history)
