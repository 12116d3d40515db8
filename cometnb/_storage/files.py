"""Files of the history folder: names that sort by time, and writes that are never half-done.

A file is written under a hidden temporary name in its final folder, flushed and fsynced, then
renamed over its final name (``os.replace`` is atomic on one filesystem), so a reader or a
crash never sees a partial image. Leftover temporaries from a killed process are ignored by
readers and swept by :func:`sweep_temporaries` once they are old enough to be abandoned.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
import time
import unicodedata
from pathlib import Path

from cometnb._core.images import file_extension
from cometnb._core.session import current

__all__ = [
    "atomic_write",
    "image_name",
    "inside",
    "keep_elsewhere",
    "preview_name",
    "slug",
    "sweep_temporaries",
]

TEMP_SUFFIX = ".tmp"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# A temporary younger than this may belong to another process still writing it.
_ABANDONED_AFTER_S = 3600.0


def inside(root: Path, relative: object) -> Path | None:
    """``root / relative`` when it stays inside the history folder ``root`` (symlinks
    resolved), else ``None``.

    The one check for every file a record names (its images, previews and an edit's inputs):
    a crafted or damaged record naming ``../private/holiday.png`` or an absolute path gets no
    path at all, so no view, export, repair, rerun or ``.data`` ever reads a file outside.
    """
    if not isinstance(relative, str) or not relative:
        return None
    plain = _plain_inside(root, relative)
    if plain is not None:
        return plain
    path = root / relative
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return path


def _plain_inside(root: Path, relative: str) -> Path | None:
    """The common case without resolving anything: ``images/<name>``-like paths (no ``..``,
    not absolute, nothing odd) whose parts below ``root`` are not symlinks. ``None`` sends
    the caller to the full check. Two ``lstat`` calls instead of one per path component twice
    over (iterating 5,000 records spent most of its time resolving paths)."""
    if os.name != "posix":  # pragma: no cover - junctions, device names: resolve them
        return None
    parts = relative.split("/")
    if any(p in ("", ".", "..") or "\\" in p or ":" in p or "\0" in p for p in parts):
        return None
    path = root
    for part in parts:
        path = path / part
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return None  # a link may point outside: resolve it
        except FileNotFoundError:
            return root.joinpath(*parts)  # nothing further to follow; lexically inside
        except OSError:
            return None
    return path


def slug(text: str, limit: int = 40) -> str:
    """A short lowercase ASCII name from a prompt: ``"A red fox!"`` → ``"a-red-fox"``.

    Example::

        >>> slug("Ünïcode & <tags>: a red fox")
        'unicode-tags-a-red-fox'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")
    return words[:limit].rstrip("-") or "image"


def image_name(record_id: str, index: int, prompt: str, fmt: str) -> str:
    """``20261122-101500-4821-3f2a9c-0-a-red-fox.png``: time, id, index, prompt."""
    return f"{record_id}-{index}-{slug(prompt)}.{file_extension(fmt)}"


def preview_name(record_id: str, index: int, mime: str) -> str:
    ext = {"image/png": "png", "image/webp": "webp"}.get(mime, "jpg")
    return f"{record_id}-{index}.{ext}"


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent or complete, never partial.

    ``durable=False`` skips the fsyncs: still atomic for readers and crashes of this process,
    but a power loss may lose the file (right for previews, which can be made again).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        _fsync_dir(path.parent)


def keep_elsewhere(named: list[tuple[str, bytes]]) -> Path | None:
    """Last resort for billed images the history could not take (a full disk): write them to
    a private folder ``<temp dir>/cometnb-unsaved-*`` (often another filesystem) and return
    it, or ``None`` when that fails too. One folder per session, so a grid that hits a full
    disk leaves every billed copy in the same place."""
    session = current()
    try:
        with session.lock:
            folder = session.unsaved_folder
            if (
                folder is None
                or not folder.is_dir()
                or folder.parent != Path(tempfile.gettempdir())
            ):
                folder = Path(tempfile.mkdtemp(prefix="cometnb-unsaved-"))  # 0700
                session.unsaved_folder = folder
        for name, data in named:
            # Plain writes: the helpers the history uses are what just failed.
            (folder / name).write_bytes(data)
    except OSError:
        return None
    return folder


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable (POSIX); directories cannot be opened on Windows.
    if os.name != "posix":  # pragma: no cover
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_temporaries(*folders: Path, older_than_s: float = _ABANDONED_AFTER_S) -> int:
    """Delete temporaries left by killed writers; returns how many were removed."""
    cutoff = time.time() - older_than_s
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
    return removed
