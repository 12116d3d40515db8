"""Decoding for edit inputs: bytes, files, PIL images and stored results become ImageInput.

:func:`cometnb._core.sources.resolve_source` parses how a source is named (``@ID``, ``{name}``,
a path) and dispatches here; this module reads and checks the image itself: its format, size,
alpha channel and safe filename, and, for history images, the record and index it came from.
Results and records are recognised by their shape, so it imports no model class.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cometnb._core.errors import CometError, ValidationError, redact
from cometnb._core.images import inspect_image, pixel_excess, sniff_format
from cometnb._core.limits import MB

# The most any model in the edit table takes (``EditCaps.max_image_bytes``): a file this big
# or bigger is refused before a byte of it is read.
MAX_INPUT_BYTES = 50 * MB

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_EXT = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}
# Stored image names start with the record id, then the image index (see _storage.files).
_STORED_NAME = re.compile(r"(?P<id>[0-9]{8}-[0-9]{6}-[0-9]{4}-[0-9a-f]{6})-(?P<k>[0-9]+)[-.]")


class StoredImage(Protocol):
    """An image result as a source needs it (``cometnb.GeneratedImage``)."""

    @property
    def path(self) -> Path | None: ...
    @property
    def data(self) -> bytes: ...


class RecordImages(Protocol):
    """A history record as a source needs it (``cometnb.Record`` has both)."""

    @property
    def id(self) -> str: ...
    @property
    def images(self) -> list[Any]: ...


@dataclass(frozen=True)
class ImageInput:
    """One resolved input image: bytes plus everything an upload and the history need.

    ``label`` is how the user named it (``photo.png``, ``@-1``, ``{logo}``); ``record_id`` and
    ``index`` say which history image it is, when it is one. The bytes never show in a repr.

    Example::

        >>> from cometnb._core.masks import mask
        >>> from cometnb._core.sources import resolve_source
        >>> src = resolve_source(mask((64, 64), box=(0, 0, 32, 32)))
        >>> src.filename, src.content_type, src.width, src.has_alpha
        ('image.png', 'image/png', 64, True)
    """

    data: bytes = field(repr=False)
    filename: str
    format: str
    width: int
    height: int
    has_alpha: bool
    label: str
    record_id: str | None = None
    index: int | None = None

    @property
    def content_type(self) -> str:
        return _MIME.get(self.format, "application/octet-stream")

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def describe(self) -> str:
        """``photo.png (image/png, 1024x1024, 1.2 MB)``: what ``--dry-run`` shows (no bytes)."""
        return (
            f"{self.filename} ({self.content_type}, {self.width}x{self.height}, "
            f"{_human_bytes(self.size_bytes)})"
        )


# --- reading and checking an image -----------------------------------------------------------


def _from_record(record: RecordImages, index: int, label: str) -> ImageInput:
    images = record.images
    if not images:
        raise ValidationError(
            f"image source {label}: record {record.id} has no images", field="image"
        )
    if index >= len(images):
        raise ValidationError(
            f"image source {label}: record {record.id} has {len(images)} image(s) "
            f"(K from 0 to {len(images) - 1}); got {index}",
            field="image",
        )
    return _from_generated(images[index], label, record.id, index)


def _from_generation(gen: Any, label: str, index: int) -> ImageInput:
    if not gen.images:
        raise ValidationError(f"image source {label} has no images ({gen.status})", field="image")
    return _from_generated(gen.images[index], label, gen.record_id, index)


def _from_generated(
    img: StoredImage, label: str, record_id: str | None, index: int | None
) -> ImageInput:
    if record_id is None and img.path is not None:
        stored = _STORED_NAME.match(img.path.name)
        if stored:  # an image from the history: keep the link for lineage
            record_id, index = stored.group("id"), int(stored.group("k"))
    try:
        data = img.data
    except OSError as exc:
        raise ValidationError(
            f"image source {label}: cannot read {img.path} ({exc.strerror or exc})", field="image"
        ) from None
    stem = img.path.stem if img.path is not None else "image"
    found = _from_bytes(data, label, stem)
    return _replace_link(found, record_id, index)


def _from_path(path: Path, label: str, limit: int | None = None) -> ImageInput:
    """Read an image file: looked at before it is opened (a folder, a FIFO, ``/dev/zero`` or a
    file over ``limit`` bytes is refused unread), then read with a cap."""
    cap = MAX_INPUT_BYTES if limit is None else min(limit, MAX_INPUT_BYTES)
    try:
        _check_file(os.stat(path), label, cap)
        # O_NONBLOCK: a FIFO swapped in after the check cannot hang the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as file:
            _check_file(os.fstat(file.fileno()), label, cap)
            data = file.read(cap)
    except FileNotFoundError:
        raise ValidationError(f"image file {label} does not exist", field="image") from None
    except OSError as exc:
        raise ValidationError(
            f"image file {label} cannot be read ({exc.strerror or type(exc).__name__})",
            field="image",
        ) from None
    if len(data) >= cap:  # it grew since it was looked at
        raise _too_big(label, len(data), cap, more=True)
    return _from_bytes(data, label, path.stem or "image")


def _check_file(info: os.stat_result, label: str, cap: int) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise ValidationError(f"image source {label} is a folder, not a file", field="image")
    if not stat.S_ISREG(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a device or special file"
        raise ValidationError(
            f"image source {label} is {kind}, not a regular file; give an image file",
            field="image",
        )
    if info.st_size >= cap:
        raise _too_big(label, info.st_size, cap)


def _too_big(label: str, size: int, cap: int, *, more: bool = False) -> ValidationError:
    return ValidationError(
        f"image file {label} is {_human_bytes(size)}{' or more' if more else ''}; an input "
        f"image must be under {_human_bytes(cap)} for this model (it was not read)",
        field="image",
    )


def _from_bytes(data: bytes, label: str, stem: str) -> ImageInput:
    if sniff_format(data) is None:
        raise ValidationError(
            f"image source {label} is not a PNG, JPEG, WebP or GIF image ({len(data):,} bytes)",
            field="image",
        )
    try:
        fmt, width, height = inspect_image(data)
        alpha = _alpha(data)
    except CometError:
        _refuse_if_too_large(data, label)
        raise ValidationError(
            f"image source {label} is a damaged or truncated image ({len(data):,} bytes)",
            field="image",
        ) from None
    safe_stem = re.sub(r"[^A-Za-z0-9._-]+", "-", redact(stem)).strip("-.")[:60] or "image"
    filename = f"{safe_stem}.{_EXT.get(fmt, fmt)}"
    return ImageInput(data, filename, fmt, width, height, alpha, redact(label))


def _refuse_if_too_large(data: bytes, label: str) -> None:
    size = pixel_excess(data)
    if size is not None:
        from cometnb._core.settings import active

        raise ValidationError(
            f"image source {label} is too large: {size}, over the "
            f"{active().limits.max_pixels:,} pixels cometnb opens (Limits.max_pixels); "
            "scale it down first",
            field="image",
        ) from None


def _replace_link(found: ImageInput, record_id: str | None, index: int | None) -> ImageInput:
    from dataclasses import replace

    return replace(found, record_id=record_id, index=index)


# --- helpers ---------------------------------------------------------------------------------


def _alpha(data: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def _is_pil(value: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(value, Image.Image)


def _pil_png(img: Any) -> bytes:
    buf = io.BytesIO()
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        img = img.convert("RGBA")
    img.save(buf, format="PNG")
    return buf.getvalue()


def _stem_of(label: str | None) -> str:
    """An upload's name (``product.png``) gives its bytes their filename; else ``image``."""
    if label and "." in label and not label.startswith(("{", "@", "<")):
        return Path(label).stem or "image"
    return "image"


def _is_generated(value: Any) -> bool:
    # GeneratedImage (models imports this module, so it is recognised by shape).
    return hasattr(value, "preview_path") and hasattr(value, "revised_prompt")


def _is_generation(value: Any) -> bool:
    return (
        isinstance(getattr(value, "images", None), list)
        and hasattr(value, "record_id")
        and isinstance(getattr(value, "request", None), dict)
    )


def _is_record(value: Any) -> bool:
    # Records live in the storage layer; recognise them by shape, not by import.
    return isinstance(getattr(value, "id", None), str) and isinstance(
        getattr(value, "images", None), list
    )


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"
