"""Input images for edits: every way a user can name one, resolved to bytes with a name and type.

A source is a file path, ``@ID`` (a history record's first image), ``@ID:K`` (its image K),
``@-1`` / ``@-2`` (history by index, ``@-1:K`` too), ``{name}`` (a notebook value), or the
value itself: ``bytes``, a ``PIL.Image.Image``, a ``pathlib.Path``, a ``GeneratedImage``, a
``Generation`` or a ``Record``. :func:`resolve_source` turns any of them into an
:class:`ImageInput`: the bytes, a filename with the right extension and the matching content
type (uploads without them are refused upstream as ``application/octet-stream``), the size,
whether it has an alpha channel, and the history record it came from (for lineage).

The core cannot import the history, so ``@…`` sources need a :class:`HistoryLookup` passed in
(or the one :func:`cometnb._core.hooks.active_history` gives). Results and records are
recognised by their shape, so this module imports no model class (``models`` imports it).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cometnb._core.errors import CometError, ValidationError, redact
from cometnb._core.images import inspect_image, pixel_excess, sniff_format

__all__ = [
    "EditBody",
    "HistoryLookup",
    "ImageInput",
    "describe_source",
    "resolve_source",
    "resolve_sources",
]

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_EXT = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}
# @ID, @ID:K, @-1, @-1:K  (ids look like 20261122-101500-4821-3f2a9c)
_REF = re.compile(r"@(?P<ref>-?[0-9]+|[0-9]{8}-[0-9]{6}-[0-9A-Za-z-]+?)(?::(?P<k>[0-9]+))?")
_VAR = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\}")
# Any other {…} (indexing, calls): named in a clear refusal rather than read as a file path.
_BRACED = re.compile(r"\{[^{}]+\}")
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


class HistoryLookup(Protocol):
    """What ``@ID`` and ``@-1`` need from a history (``cometnb.History`` implements it)."""

    def get(self, record_id: str) -> Any: ...
    def __getitem__(self, index: int) -> Any: ...
    def __len__(self) -> int: ...


@dataclass(frozen=True)
class ImageInput:
    """One resolved input image: bytes plus everything an upload and the history need.

    ``label`` is how the user named it (``photo.png``, ``@-1``, ``{logo}``); ``record_id`` and
    ``index`` say which history image it is, when it is one. The bytes never show in a repr.

    Example::

        >>> from cometnb._core.masks import mask
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


def resolve_sources(
    sources: Any,
    *,
    history: HistoryLookup | None = None,
    namespace: Mapping[str, Any] | None = None,
) -> list[ImageInput]:
    """One source or a list/tuple of them → a list of :class:`ImageInput`."""
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    return [resolve_source(s, history=history, namespace=namespace) for s in items]


def resolve_source(
    source: Any,
    *,
    history: HistoryLookup | None = None,
    namespace: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> ImageInput:
    """Resolve one source (see the module docstring); :class:`ValidationError` names it if bad."""
    if isinstance(source, ImageInput):
        return source
    if isinstance(source, str):
        return _from_text(source, history, namespace, label)
    shown = label or describe_source(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), shown, _stem_of(label))
    if isinstance(source, Path):
        return _from_path(source, label or str(source))
    if _is_generated(source):
        return _from_generated(source, shown, None, None)
    if _is_generation(source):
        return _from_generation(source, shown, 0)
    if _is_pil(source):
        return _from_bytes(_pil_png(source), shown, "image")
    if _is_record(source):
        return _from_record(source, 0, shown)
    raise ValidationError(
        f"image source {shown} is a {type(source).__name__}; use a file path, @ID, @-1, bytes, "
        "a PIL image, a Path, a GeneratedImage, a Generation or a Record",
        field="image",
    )


def describe_source(source: Any) -> str:
    """A short name for a source in messages (never its bytes)."""
    if isinstance(source, str):
        return source if len(source) <= 80 else source[:79] + "…"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source):,} bytes>"
    if isinstance(source, Path):
        return str(source)
    if _is_record(source):
        return f"record {source.id}"
    if _is_generation(source):
        return f"generation {source.record_id or '(not stored)'}"
    return f"<{type(source).__name__}>"


# --- the forms -------------------------------------------------------------------------------


def _from_text(
    text: str,
    history: HistoryLookup | None,
    namespace: Mapping[str, Any] | None,
    label: str | None,
) -> ImageInput:
    stripped = text.strip()
    ref = _REF.fullmatch(stripped)
    if ref:
        return _from_history(ref.group("ref"), ref.group("k"), history, label or stripped)
    var = _VAR.fullmatch(stripped)
    if var:
        return _from_variable(var.group("name"), namespace, label or stripped, history)
    if _BRACED.fullmatch(stripped):
        raise ValidationError(
            f"image source {stripped}: only a variable name or name.attribute can go in braces "
            f"(no indexing or calls); assign it first (pic = {stripped[1:-1]}) and use {{pic}}",
            field="image",
        )
    return _from_path(Path(stripped).expanduser(), label or stripped)


def _from_variable(
    name: str, namespace: Mapping[str, Any] | None, label: str, history: HistoryLookup | None
) -> ImageInput:
    head, *attrs = name.split(".")
    if namespace is None or head not in namespace:
        raise ValidationError(
            f"image source {label}: no variable {head!r} is defined", field="image"
        )
    value, reached = namespace[head], head
    for attr in attrs:
        if not hasattr(value, attr):  # not None: "is a NoneType" would hide the typo
            raise ValidationError(
                f"image source {label}: {reached} (type {type(value).__name__}) has no "
                f"attribute {attr!r}",
                field="image",
            )
        value, reached = getattr(value, attr), f"{reached}.{attr}"
    if isinstance(value, str) and (_REF.fullmatch(value.strip()) or _VAR.fullmatch(value.strip())):
        raise ValidationError(
            f"image source {label} names another source ({value!r})", field="image"
        )
    return resolve_source(value, history=history, label=label)


def _from_history(ref: str, k: str | None, history: HistoryLookup | None, label: str) -> ImageInput:
    if history is None:
        from cometnb._core.lookups import active_history

        history = active_history()  # the package root installs the active History
    if history is None:
        raise ValidationError(
            f"image source {label} needs a history to look it up in", field="image"
        )
    if ref.lstrip("-").isdigit():
        index = int(ref)
        try:
            record = history[index]
        except IndexError:
            raise ValidationError(
                f"image source {label}: the history has {len(history)} record(s)", field="image"
            ) from None
    else:
        record = history.get(ref)
        if record is None:
            raise ValidationError(
                f"image source {label}: no record {ref} in the history", field="image"
            )
    return _from_record(record, int(k) if k else 0, label)


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


def _from_path(path: Path, label: str) -> ImageInput:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValidationError(f"image file {label} does not exist", field="image") from None
    except IsADirectoryError:
        raise ValidationError(
            f"image source {label} is a folder, not a file", field="image"
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"image file {label} cannot be read ({exc.strerror or type(exc).__name__})",
            field="image",
        ) from None
    return _from_bytes(data, label, path.stem or "image")


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


class EditBody(dict[str, Any]):
    """A request body (the JSON-able fields) that also carries its input images and mask.

    It is a plain ``dict`` of the text fields everywhere (records, ``Generation.request``,
    ``--dry-run``), so the bytes never land in a record; the client reads ``images`` and
    ``mask`` to build the multipart upload (or the JSON ``image`` array for seedream).
    """

    images: tuple[ImageInput, ...]
    mask: ImageInput | None

    def __init__(
        self,
        fields: Mapping[str, Any],
        images: tuple[ImageInput, ...] | list[ImageInput],
        mask: ImageInput | None = None,
    ) -> None:
        super().__init__(fields)
        self.images = tuple(images)
        self.mask = mask

    @property
    def inputs(self) -> list[tuple[str, ImageInput]]:
        """``(role, image)`` pairs: ``("image", …)`` for each input, then ``("mask", …)``."""
        found = [("image", img) for img in self.images]
        return found + ([("mask", self.mask)] if self.mask is not None else [])

    def __reduce__(self) -> Any:  # copies and pickles keep the inputs
        return (EditBody, (dict(self), self.images, self.mask))
