"""Image bytes for the routes: previews (small rasters, cached), originals and labelled copies.

Nothing here writes into a history. A preview is the one the history stored
(``previews/<id>-<k>.webp``), scaled down when a smaller one is asked for; when the history has
none yet it is made in memory from the original with the same code (``make_preview``) and kept
in a small in-process cache, never written. Originals are served as they are on disk; whether a
file may be shown inline is decided from its bytes (:func:`inline_type`), not from what its
record claims: only PNG, JPEG, WebP and GIF are; everything else (SVG, which can carry scripts,
and anything unrecognised) is sent as an attachment in a sandbox. Every path comes from
``Record`` / ``Source``, which admit only files inside the history folder (``files.inside``,
symlinks resolved), and is checked again when opened (:func:`open_inside`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

from cometnb._core.errors import CometError
from cometnb._core.generations import GeneratedImage
from cometnb._core.images import make_preview, sniff_format
from cometnb._core.settings import active

__all__ = [
    "CHUNK",
    "INERT_CSP",
    "PreviewCache",
    "attachment_type",
    "inline_type",
    "labelled_copy",
    "open_inside",
    "preview_bytes",
    "preview_tag",
    "stat_tag",
]

CHUNK = 64 * 1024
# Sent with every original and copy: a file opened as a document runs nothing, loads nothing.
INERT_CSP = "sandbox; default-src 'none'"
_RASTER = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_OTHER = {"svg": "image/svg+xml"}
_HEAD = 64
_CACHE_BYTES = 32 * 1024 * 1024


def inline_type(head: bytes) -> str | None:
    """The Content-Type of a raster a browser may show inline, from the file's first bytes;
    ``None`` for anything else (SVG, HTML, unknown)."""
    return _RASTER.get(sniff_format(head) or "")


def attachment_type(fmt: str) -> str:
    """The Content-Type of a file sent as an attachment (by its record's format)."""
    return _OTHER.get(fmt.lower(), "application/octet-stream")


def stat_tag(path: Path, *parts: object) -> str:
    """A strong ETag for ``path`` as it is now (size and change time) and ``parts``."""
    st = os.stat(path)
    return '"' + "-".join(str(p) for p in (*parts, st.st_size, st.st_mtime_ns)) + '"'


def preview_tag(image: GeneratedImage, name: str, px: int | None) -> str | None:
    """The ETag of ``image``'s preview: of the stored preview, or of the original it is made
    from when there is none; ``None`` when neither file is there."""
    for path, kind in ((image.preview_path, "stored"), (image.path, "made")):
        if path is not None:
            try:
                return stat_tag(path, name, px or kind)
            except OSError:
                continue
    return None


def open_inside(root: Path, path: Path) -> BinaryIO:
    """Open ``path`` for reading when, resolved, it is still inside ``root`` (a file swapped
    for a symlink since the record was read is refused too)."""
    resolved = path.resolve()
    resolved.relative_to(root.resolve())  # ValueError when outside
    return open(resolved, "rb")  # the caller streams and closes it


class PreviewCache:
    """Previews made in memory (never written to the history), least recently used dropped
    first once they hold more than :data:`_CACHE_BYTES`."""

    def __init__(self, limit: int = _CACHE_BYTES) -> None:
        self._items: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: tuple[bytes, str]) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value[0])
            while self._size > self._limit and self._items:
                _key, (data, _mime) = self._items.popitem(last=False)
                self._size -= len(data)


def preview_bytes(
    root: Path, image: GeneratedImage, px: int | None, cache: PreviewCache, tag: str
) -> tuple[bytes, str]:
    """A raster preview of ``image``: the stored one (scaled to ``px`` when smaller), or one
    made in memory from the original (an SVG's drawn by resvg, never its markup).
    :class:`CometError` when neither can be had (a missing or damaged file)."""
    found = cache.get(tag)
    if found is not None:
        return found
    stored = _read(root, image.preview_path)
    stored_type = inline_type(stored[:_HEAD]) if stored is not None else None
    if stored is not None and stored_type is not None:
        # make_preview hands back a preview that already fits unchanged.
        made = (stored, stored_type) if px is None else make_preview(stored, px, encode="webp")
    else:
        original = _read(root, image.path)
        if original is None:
            raise CometError("the image file is missing from the history folder")
        made = make_preview(original, px or active().thumbnail_px, encode="webp")
    cache.put(tag, made)
    return made


def _read(root: Path, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open_inside(root, path) as f:
            return f.read()
    except (OSError, ValueError):
        return None


def labelled_copy(image: GeneratedImage) -> Path:
    """A copy of ``image`` carrying its provenance, made by ``GeneratedImage.save`` (the one
    copy function) in a new private temporary folder outside the history; the caller deletes
    the file and its folder."""
    folder = Path(tempfile.mkdtemp(prefix="cometnb-download-"))
    try:
        return image.save(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
