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

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cometnb._core.errors import ValidationError
from cometnb._core.image_inputs import (
    ImageInput,
    _from_bytes,
    _from_generated,
    _from_generation,
    _from_path,
    _from_record,
    _is_generated,
    _is_generation,
    _is_pil,
    _is_record,
    _pil_png,
    _stem_of,
)

__all__ = [
    "EditBody",
    "HistoryLookup",
    "ImageInput",
    "describe_source",
    "resolve_source",
    "resolve_sources",
]

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


# --- the forms -------------------------------------------------------------------------------


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
