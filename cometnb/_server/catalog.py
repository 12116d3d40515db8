"""Which histories the sidebar may read: found under the server's root, named by opaque ids.

A history is a folder named ``cometnb-history`` holding an ``index.sqlite3``, found in the
server's ``root_dir`` or in a folder up to :data:`MAX_DEPTH` levels below it, plus the folder
``$COMETNB_HISTORY`` names (as the server's environment has it). The walk skips hidden
folders, ``node_modules``, ``site-packages`` / ``dist-packages``, ``__pycache__`` and
virtualenvs (a folder holding ``pyvenv.cfg``), follows no symlinked folder, and stops after
:data:`MAX_FOLDERS` folders or :data:`MAX_SECONDS` (``Catalog.truncated`` says so). A
``cometnb-history`` that is itself a symlink counts only when it resolves inside the root.

Each history gets an id: a hash of its resolved path, the same across server restarts, that
names nothing on disk. A request can only name an id found here; an id not known is looked for
once more (a history created since the last walk; requests missing at once share the walk)
and otherwise refused. A listing reuses a walk younger than :data:`FRESH_SECONDS`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cometnb._core.settings import DEFAULT_HISTORY_DIR, HISTORY_ENV
from cometnb._storage.browse import Browser
from cometnb._storage.index import DB_NAME

__all__ = ["FRESH_SECONDS", "MAX_DEPTH", "Catalog", "FoundHistory", "history_id"]

MAX_DEPTH = 3  # root/a/b/c/cometnb-history is the deepest found
MAX_FOLDERS = 5_000
MAX_SECONDS = 0.5
FRESH_SECONDS = 2.0  # a walk younger than this is reused
_SKIP = frozenset({"node_modules", "site-packages", "dist-packages", "__pycache__"})


def history_id(folder: Path) -> str:
    """The opaque, stable id of the history at ``folder`` (a resolved path)."""
    return hashlib.blake2b(os.fsencode(folder), digest_size=8).hexdigest()


@dataclass(frozen=True)
class FoundHistory:
    """A history the server may read: ``id``, its ``folder`` (resolved) and the ``path`` shown
    (relative to the root when inside it, else absolute)."""

    id: str
    folder: Path
    path: str


class Catalog:
    """The histories under ``root`` (and ``$COMETNB_HISTORY``), each with its :class:`Browser`.

    Example::

        >>> catalog = Catalog(Path.home() / "work")  # doctest: +SKIP
        >>> [h.path for h in catalog.histories()]  # doctest: +SKIP
        ['cometnb-history', 'project/notebooks/cometnb-history']
    """

    def __init__(self, root: Path, env_history: str | None = None) -> None:
        self.root = root.resolve()
        self._env = env_history if env_history is not None else os.environ.get(HISTORY_ENV)
        self._lock = threading.Lock()
        self._found: dict[str, FoundHistory] = {}
        self._browsers: dict[str, Browser] = {}
        self._walked_at = -float("inf")
        self._walks = 0  # walks done so far
        self.truncated = False

    def histories(self, *, refresh: bool = False) -> list[FoundHistory]:
        """Every history found, by path (walks again when the last walk is stale)."""
        with self._lock:
            if refresh or time.monotonic() - self._walked_at > FRESH_SECONDS:
                self._walk()
            return sorted(self._found.values(), key=lambda h: h.path)

    def find(self, hid: str) -> FoundHistory | None:
        """The history with id ``hid``; one fresh walk when it is not known (yet). Requests
        that miss at the same time share one walk."""
        asked = self._walks
        with self._lock:
            if hid not in self._found and self._walks == asked:
                self._walk()
            return self._found.get(hid)

    def browser(self, found: FoundHistory) -> Browser:
        """The (reused) read-only browser of a found history."""
        with self._lock:
            browser = self._browsers.get(found.id)
            if browser is None:
                browser = self._browsers[found.id] = Browser(found.folder)
            return browser

    def close(self) -> None:
        with self._lock:
            for browser in self._browsers.values():
                browser.close()
            self._browsers.clear()

    # --- the walk --------------------------------------------------------------------------

    def _walk(self) -> None:
        found: dict[str, FoundHistory] = {}
        for folder in self._candidates():
            if (folder / DB_NAME).is_file():
                hid = history_id(folder)
                found[hid] = FoundHistory(hid, folder, self._shown(folder))
        for gone in set(self._browsers) - set(found):
            self._browsers.pop(gone).close()
        self._found, self._walked_at = found, time.monotonic()
        self._walks += 1

    def _candidates(self) -> list[Path]:
        out = []
        if self._env:
            env = Path(self._env).expanduser()
            out.append(Path(os.path.abspath(env)).resolve())
        deadline = time.monotonic() + MAX_SECONDS
        budget = MAX_FOLDERS
        level = [self.root]
        self.truncated = False
        for depth in range(MAX_DEPTH + 1):
            below: list[Path] = []
            for folder in level:
                budget -= 1
                if budget < 0 or time.monotonic() > deadline:
                    self.truncated = True
                    return out
                self._scan(folder, out, below if depth < MAX_DEPTH else None)
            level = below
        return out

    def _scan(self, folder: Path, out: list[Path], below: list[Path] | None) -> None:
        """Note ``folder``'s ``cometnb-history`` child and queue its other subfolders."""
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        if below is not None and any(e.name == "pyvenv.cfg" for e in entries):
            return  # a virtualenv: nothing of ours below
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name in _SKIP:
                continue
            if name == DEFAULT_HISTORY_DIR:
                history = self._accepted(Path(entry.path))
                if history is not None:
                    out.append(history)
                continue
            try:
                if below is not None and entry.is_dir(follow_symlinks=False):
                    below.append(Path(entry.path))
            except OSError:
                continue

    def _accepted(self, path: Path) -> Path | None:
        """``path`` resolved, when it is a folder that stays inside the root."""
        try:
            resolved = path.resolve()
            resolved.relative_to(self.root)
        except (OSError, ValueError):
            return None
        return resolved if resolved.is_dir() else None

    def _shown(self, folder: Path) -> str:
        try:
            return folder.relative_to(self.root).as_posix()
        except ValueError:
            return str(folder)
