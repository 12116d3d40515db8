"""Late-bound services that lower layers call but must not import.

Records and results display themselves as HTML, and ``History.rerun`` sends requests, yet the
views and the client sit above the core and storage. So the lower layers ask this module, and
``cometnb/__init__.py`` installs the implementations lazily (the first call imports them).
Tests may install stand-ins.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from cometnb._core.protocols import Runner

__all__ = ["install_runner_factory", "install_view_loader", "new_runner", "register_view", "render"]

ViewFn = Callable[..., str]

_views: dict[str, ViewFn] = {}
_view_loader: Callable[[], None] | None = None
_runner_factory: Callable[[Any], Runner] | None = None


def register_view(kind: str, fn: ViewFn) -> None:
    """Make ``fn`` the HTML view for ``kind`` (``"generation"``, ``"record"``, …)."""
    _views[kind] = fn


def install_view_loader(loader: Callable[[], None]) -> None:
    """``loader()`` registers the views; it runs on the first :func:`render`."""
    global _view_loader
    _view_loader = loader


def render(kind: str, *args: Any, **kwargs: Any) -> str:
    """The HTML of ``args`` as a ``kind`` view; a plain escaped repr if no view is installed."""
    fn = _views.get(kind)
    if fn is None and _view_loader is not None:
        _view_loader()
        fn = _views.get(kind)
    if fn is None:
        return f"<pre>{html.escape(repr(args[0]) if args else kind)}</pre>"
    return fn(*args, **kwargs)


def install_runner_factory(factory: Callable[[Any], Runner]) -> None:
    """``factory(history)`` returns a :class:`Runner` that stores into ``history``."""
    global _runner_factory
    _runner_factory = factory


def new_runner(history: Any) -> Runner:
    """A runner storing into ``history`` (the default client, as installed by the package)."""
    if _runner_factory is None:
        raise RuntimeError("no default runner is installed; pass client=…")
    return _runner_factory(history)
