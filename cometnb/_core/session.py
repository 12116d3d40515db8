"""The session: everything process-wide, in one object.

One :class:`Session` holds the settings in force, the key held by ``%cometimg_key``, the keyless
simulator's URL, the spend ledger (what ``CometImg.budget`` caps), the histories open (one per
folder), the parts with threads (the private loop, the preview queue) and the late-bound
services: lower layers render, re-run, find histories and make previews through it without
importing the layers above (the package root injects those callables). The package root makes
the session on first use (:func:`current`); tests install a fresh one (``tests/conftest.py``).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "Session",
    "Stoppable",
    "active_history",
    "current",
    "history_at",
    "install",
    "missing_preview",
    "new_runner",
    "register_view",
    "render",
]

T = TypeVar("T")

ViewFn = Callable[..., str]
# The injected services. This module imports nothing from cometnb (everything in the core
# imports it), so a runner and a history are opaque here; their callers type them
# (:class:`cometnb._core.protocols.Runner`, ``History``).
RunnerFactory = Callable[[Any], Any]  # history -> a runner storing into it (the default client)
HistoryFinder = Callable[[Any], Any]  # folder (None: the active one) -> its History
PreviewMaker = Callable[[Path, Path], "bytes | None"]  # (original, preview) -> preview bytes


@runtime_checkable
class Stoppable(Protocol):
    """A session part that runs threads (the loop thread, the preview queue)."""

    def stop(self, timeout: float = ...) -> None: ...


@dataclass(eq=False)
class Session:
    """What this process has in force; one at a time (:func:`current`).

    The settings in force and the spend ledger are parts (``part(Settings)``, read through
    ``settings.active()`` and ``budget.ledger()``), as are the loop thread and the preview
    queue: each made on first use by the module that owns its type. The services are ``None``
    until the package root injects them (``cometnb._new_session``); ``view_loader()`` registers
    the views on the first :func:`render`.
    """

    session_key: str | None = None  # %cometimg_key, held in memory only
    # Keyless demo mode: cometnb.sim's background simulator. Kept apart from ``settings`` so the
    # magic copying its traits does not erase it; a key of the user's own ends it.
    simulator_url: str | None = None
    histories: dict[str, Any] = field(default_factory=dict)  # folder -> History, one each
    unsaved_folder: Path | None = None  # where billed images go when the history's disk is full
    runner_factory: RunnerFactory | None = None
    history_finder: HistoryFinder | None = None
    preview_maker: PreviewMaker | None = None
    view_loader: Callable[[], None] | None = None
    views: dict[str, ViewFn] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _parts: dict[Callable[[], Any], Any] = field(default_factory=dict, repr=False)

    def part(self, make: Callable[[], T]) -> T:
        """This session's one ``make()`` (its settings, ledger, loop thread, preview queue),
        made on first use; each owner passes its own class, so this module imports none."""
        with self.lock:
            found = self._parts.get(make)
            if found is None:
                found = self._parts[make] = make()
            return found

    def close(self, timeout: float = 5.0) -> None:
        """Stop the parts that run threads (a test's session ends with the test), the last
        made first: a part made using an earlier one (a client on the loop thread) still has
        it while it stops."""
        with self.lock:
            parts, self._parts = list(self._parts.values()), {}
        for found in reversed(parts):
            if isinstance(found, Stoppable):
                found.stop(timeout)


# The one process-level reference: the session in force, or the root's maker of it until the
# first use (so ``import cometnb`` stays light). Written only by :func:`install`.
_current: Session | Callable[[], Session] = Session
_lock = threading.RLock()


def install(session: Session | Callable[[], Session]) -> Session | Callable[[], Session]:
    """Put ``session`` (or a maker called on first use) in force; returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, session
    return previous


def current() -> Session:
    """The session in force (made on the first call)."""
    with _lock:  # re-entrant: install() takes it too
        found = _current
        if not isinstance(found, Session):
            found = found()
            install(found)
        return found


# --- late-bound services: what the lower layers ask, the package root injects ---------------


def register_view(kind: str, fn: ViewFn) -> None:
    """Make ``fn`` the HTML view for ``kind`` (``"generation"``, ``"record"``, …)."""
    current().views[kind] = fn


def render(kind: str, *args: Any, **kwargs: Any) -> str:
    """The HTML of ``args`` as a ``kind`` view; a plain escaped repr if no view is installed."""
    session = current()
    fn = session.views.get(kind)
    if fn is None and session.view_loader is not None:
        session.view_loader()
        fn = session.views.get(kind)
    if fn is None:
        return f"<pre>{html.escape(repr(args[0]) if args else kind)}</pre>"
    return fn(*args, **kwargs)


def new_runner(history: Any) -> Any:
    """A runner storing into ``history`` (the default client, as the package root injects)."""
    factory = current().runner_factory
    if factory is None:
        raise RuntimeError("no default runner is installed; pass client=…")
    return factory(history)


def active_history() -> Any | None:
    """The active history (for ``@-1``), or ``None`` when no finder is injected."""
    finder = current().history_finder
    return finder(None) if finder is not None else None


def history_at(path: Any) -> Any:
    """The history whose folder is ``path`` (one instance per folder, as ``history(path)``)."""
    finder = current().history_finder
    if finder is None:
        raise RuntimeError("no history lookup is installed")
    return finder(path)


def missing_preview(original: Path, preview: Path) -> bytes | None:
    """The bytes of a named but not yet written preview (storage makes it); ``None`` when no
    maker is injected."""
    maker = current().preview_maker
    return None if maker is None else maker(original, preview)
