"""The display hook: records and results show themselves as HTML, yet the views sit above the
core and storage. So ``_repr_html_`` asks this registry, and ``cometnb/__init__.py`` installs a
loader that registers the views on the first call. Tests may register stand-ins.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

__all__ = ["install_view_loader", "register_view", "render"]

ViewFn = Callable[..., str]

_views: dict[str, ViewFn] = {}
_view_loader: Callable[[], None] | None = None


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
