"""Edit inputs: every way a user can name an input image, resolved to checked bytes.

A source is a file path, ``@ID`` / ``@ID:K`` / ``@-1`` (history), ``{name}`` (a notebook value),
or the value itself (bytes, a PIL image, a Path, a result or record). :func:`resolve_source`
parses how it is named and decodes it into an :class:`ImageInput`: bytes, filename, content
type, size, alpha, and the record it came from (lineage). The core cannot import the history,
so ``@...`` sources need a :class:`HistoryLookup`. :func:`mask` builds the edit mask for the
common "change only this region" case.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cometnb._core.byte_limits import MB
from cometnb._core.errors import CometError, ValidationError, redact
from cometnb._core.images import (
    file_extension,
    inspect_image,
    mime_type,
    pixel_excess,
    sniff_format,
)

__all__ = [
    "EditBody",
    "HistoryLookup",
    "ImageInput",
    "describe_source",
    "mask",
    "resolve_source",
    "resolve_sources",
]


# --- decoding an input image ------------------------------------------------------------------

# The most any model in the edit table takes (``EditCaps.max_image_bytes``): a file this big
# or bigger is refused before a byte of it is read.
MAX_INPUT_BYTES = 50 * MB


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

        >>> from cometnb._core.edit_inputs import mask
        >>> from cometnb._core.edit_inputs import resolve_source
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
        return mime_type(self.format)

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
    filename = f"{safe_stem}.{file_extension(fmt)}"
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


# --- naming an input image --------------------------------------------------------------------

# @ID, @ID:K, @-1, @-1:K  (ids look like 20261122-101500-4821-3f2a9c)
_REF = re.compile(r"@(?P<ref>-?[0-9]+|[0-9]{8}-[0-9]{6}-[0-9A-Za-z-]+?)(?::(?P<k>[0-9]+))?")


_VAR = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\}")


# Any other {…} (indexing, calls): named in a clear refusal rather than read as a file path.
_BRACED = re.compile(r"\{[^{}]+\}")


class HistoryLookup(Protocol):
    """What ``@ID`` and ``@-1`` need from a history (``cometnb.History`` implements it)."""

    def get(self, record_id: str) -> Any: ...
    def __getitem__(self, index: int) -> Any: ...
    def __len__(self) -> int: ...


def resolve_sources(
    sources: Any,
    *,
    history: HistoryLookup | None = None,
    namespace: Mapping[str, Any] | None = None,
    max_bytes: int | None = None,
) -> list[ImageInput]:
    """One source or a list/tuple of them → a list of :class:`ImageInput`; a file of
    ``max_bytes`` or more (the model's limit) is refused without being read."""
    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    return [
        resolve_source(s, history=history, namespace=namespace, max_bytes=max_bytes) for s in items
    ]


def resolve_source(
    source: Any,
    *,
    history: HistoryLookup | None = None,
    namespace: Mapping[str, Any] | None = None,
    label: str | None = None,
    max_bytes: int | None = None,
) -> ImageInput:
    """Resolve one source (see the module docstring); :class:`ValidationError` names it if bad.

    A file is looked at before it is read: a folder, a pipe, a device, or a file of
    ``max_bytes`` or more (default: the most any model takes) is refused unread."""
    if isinstance(source, ImageInput):
        return source
    if isinstance(source, str):
        return _from_text(source, history, namespace, label, max_bytes)
    shown = label or describe_source(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), shown, _stem_of(label))
    if isinstance(source, Path):
        return _from_path(source, label or str(source), max_bytes)
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


def _from_text(
    text: str,
    history: HistoryLookup | None,
    namespace: Mapping[str, Any] | None,
    label: str | None,
    max_bytes: int | None = None,
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
    return _from_path(Path(stripped).expanduser(), label or stripped, max_bytes)


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
        from cometnb._core.session import active_history

        history = active_history()  # the package root injects the history finder
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


class EditBody(dict[str, Any]):
    """A request body (the JSON-able fields) that also carries its input images, mask and markup.

    It is a plain ``dict`` of the text fields everywhere (records, ``Generation.request``,
    ``--dry-run``), so the bytes never land in a record; the client reads ``images``, ``mask``
    and ``markup`` to build the multipart upload (or the JSON ``image`` array for seedream).
    """

    images: tuple[ImageInput, ...]
    mask: ImageInput | None
    markup: ImageInput | None

    def __init__(
        self,
        fields: Mapping[str, Any],
        images: tuple[ImageInput, ...] | list[ImageInput],
        mask: ImageInput | None = None,
        markup: ImageInput | None = None,
    ) -> None:
        super().__init__(fields)
        self.images = tuple(images)
        self.mask = mask
        self.markup = markup

    @property
    def inputs(self) -> list[tuple[str, ImageInput]]:
        """``(role, image)`` pairs: ``("image", …)`` for each input, then ``("mask", …)`` or
        ``("markup", …)`` (the part each is sent as, and the role its record keeps)."""
        found = [("image", img) for img in self.images]
        extra = [(role, img) for role, img in (("mask", self.mask), ("markup", self.markup))]
        return found + [(role, img) for role, img in extra if img is not None]

    def __reduce__(self) -> Any:  # copies and pickles keep the inputs
        return (EditBody, (dict(self), self.images, self.mask, self.markup))


# --- cometnb.mask -----------------------------------------------------------------------------

Box = tuple[float, float, float, float]


def mask(
    image: Any,
    box: Sequence[float] | None = None,
    *,
    boxes: Sequence[Sequence[float]] | None = None,
    history: HistoryLookup | None = None,
) -> bytes:
    """A mask PNG the size of ``image``, transparent (editable) inside ``box`` / ``boxes``.

    ``image`` is any edit source (path, ``@-1``, bytes, PIL image, ``GeneratedImage``,
    ``Generation``, ``Record``) or a ``(width, height)`` pair; ``history`` looks up ``@…``
    sources (``cometnb.mask`` passes the active one). A box is ``(x0, y0, x1, y1)`` in
    pixels, or in fractions of the size when every value is between 0 and 1.

    Example::

        >>> png = mask((1024, 1024), box=(0, 0, 1024, 400))  # the top: the sky
        >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        True
    """
    from PIL import Image, ImageDraw

    regions = [*([box] if box is not None else []), *(boxes or [])]
    if not regions:
        raise ValidationError("mask() needs box=(x0, y0, x1, y1) or boxes=[...]", field="mask")
    width, height = _size_of(image, history)
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 255))  # opaque: keep
    draw = ImageDraw.Draw(canvas)
    for region in regions:
        x0, y0, x1, y1 = _pixels(region, width, height)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=(0, 0, 0, 0))  # transparent: edit
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _size_of(image: Any, history: HistoryLookup | None) -> tuple[int, int]:
    if (
        isinstance(image, (tuple, list))
        and len(image) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in image)
    ):
        width, height = int(image[0]), int(image[1])
        if width < 1 or height < 1:
            raise ValidationError(
                f"mask() size must be positive; got {width}x{height}", field="mask"
            )
        return width, height
    found = resolve_source(image, history=history)
    return found.width, found.height


def _pixels(region: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    if len(region) != 4:
        raise ValidationError(
            f"a mask box is (x0, y0, x1, y1); got {tuple(region)!r}", field="mask"
        )
    values = [float(v) for v in region]
    # Floats all within 0..1 are fractions of the size; ints are pixels.
    if any(isinstance(v, float) for v in region) and all(0.0 <= v <= 1.0 for v in values):
        values = [values[0] * width, values[1] * height, values[2] * width, values[3] * height]
    x0, y0, x1, y1 = (round(v) for v in values)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValidationError(
            f"mask box {tuple(region)!r} is not inside the {width}x{height} image "
            "(need 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height)",
            field="mask",
        )
    return x0, y0, x1, y1
