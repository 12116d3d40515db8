"""Edit inputs in the history: stored once by content, listed on records, followed for lineage.

An edit's input images, mask and markup are written to ``sources/<sha256>.<ext>`` under the
history folder (not into the notebook): the same picture used by ten edits is one file. Each record
lists its inputs in its document (``sources``: role, file, hash, size, and the record and image
index it came from when it came from the history); ``parent`` is the record the first input
came from. Records written before edits existed simply have no ``sources`` and no ``parent``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cometnb._core.edit_inputs import EditBody, ImageInput, resolve_source
from cometnb._core.errors import ValidationError
from cometnb._core.generations import GeneratedImage, Generation, ImageRequest
from cometnb._core.images import file_extension
from cometnb._core.protocols import Runner
from cometnb._core.session import history_at, new_runner
from cometnb._storage import files as _files

__all__ = [
    "SOURCES",
    "Source",
    "edit_record",
    "lineage_of",
    "parent_of",
    "request_of",
    "source_docs",
    "store_sources",
]

SOURCES = "sources"


def store_sources(root: Path, request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Write the inputs of an edit request (once per content); their documents, in order.

    ``request`` is an :class:`EditBody` for an edit; any other mapping has no inputs (``[]``).
    """
    if not isinstance(request, EditBody):
        return []
    docs = []
    for role, img in request.inputs:
        name = f"{img.sha256}.{file_extension(img.format)}"
        target = root / SOURCES / name
        if not target.exists():  # content-addressed: an existing file is the same bytes
            _files.atomic_write(target, img.data)
        docs.append(_doc(role, f"{SOURCES}/{name}", img))
    return docs


def source_docs(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The documents :func:`store_sources` would write, without writing (failed requests)."""
    if not isinstance(request, EditBody):
        return []
    return [_doc(role, None, img) for role, img in request.inputs]


def _doc(role: str, file: str | None, img: ImageInput) -> dict[str, Any]:
    return {
        "role": role,
        "file": file,
        "sha256": img.sha256,
        "label": img.label,
        "filename": img.filename,
        "format": img.format,
        "width": img.width,
        "height": img.height,
        "bytes": img.size_bytes,
        "record": img.record_id,
        "index": img.index,
    }


def parent_of(docs: list[dict[str, Any]]) -> str | None:
    """The record the first input image came from (``None`` when it did not come from one)."""
    firsts = [d for d in docs if d.get("role") == "image"]
    return firsts[0].get("record") if firsts else None


class Source:
    """One input of an edit, as its record lists it: the stored file and where it came from.

    ``role`` is ``"image"``, ``"mask"`` or ``"markup"``; ``record_id`` / ``index`` name the
    history image it was (``None`` for a file or a value from the notebook); ``label`` is how it
    was named.

    Example::

        >>> rec = history()[-1]  # doctest: +SKIP
        >>> [(s.role, s.label, s.record_id) for s in rec.sources]  # doctest: +SKIP
        [('image', '@-2', '20261122-101500-4821-3f2a9c'), ('mask', 'sky-mask.png', None)]
    """

    __slots__ = ("_doc", "_owner", "_root")

    def __init__(self, doc: Mapping[str, Any], root: Path, owner: str | None = None) -> None:
        self._doc, self._root, self._owner = dict(doc), root, owner  # owner: the edit's record

    role = property(lambda self: str(self._doc.get("role", "image")))
    label = property(lambda self: str(self._doc.get("label", "")))
    filename = property(lambda self: str(self._doc.get("filename", "")))
    format = property(lambda self: str(self._doc.get("format", "")))
    width = property(lambda self: int(self._doc.get("width") or 0))
    height = property(lambda self: int(self._doc.get("height") or 0))
    sha256 = property(lambda self: str(self._doc.get("sha256", "")))
    record_id = property(lambda self: self._doc.get("record"))
    index = property(lambda self: self._doc.get("index"))

    @property
    def path(self) -> Path | None:
        """The stored file (``None`` for the inputs of a request that failed before storing,
        and for a crafted or damaged document naming a file outside the history folder)."""
        return _files.inside(self._root, self._doc.get("file"))

    @property
    def outside(self) -> bool:
        """True when the document names a file outside the history folder (refused)."""
        file = self._doc.get("file")
        return bool(file) and self.path is None

    @property
    def image(self) -> GeneratedImage:
        """The input as a :class:`GeneratedImage` (displays itself, ``.pil()``, ``.data``)."""
        return GeneratedImage(self.path, self.format, self.width, self.height)

    @property
    def data(self) -> bytes:
        return self.image.data

    def to_input(self) -> ImageInput:
        """The input again, ready to send (``rerun`` uses it); :class:`ValidationError` when
        its file is gone (or was never stored)."""
        path = self.path
        if self.outside:
            raise ValidationError(
                f"input {self.filename or self.label} of record {self._owner or '?'} names a "
                f"file outside the history folder ({self._doc.get('file')!r:.120}); it is "
                "refused and nothing was sent",
                field="image",
            )
        if path is None or not path.is_file():
            raise ValidationError(
                f"input {self.filename or self.label} of record {self._owner or '?'} is no "
                f"longer in the history folder ({self._doc.get('file') or 'never stored'})",
                field="image",
            )
        return ImageInput(
            self.data,
            self.filename or f"image.{file_extension(self.format, 'png')}",
            self.format,
            self.width,
            self.height,
            self._has_alpha(),
            self.label,
            self.record_id,
            self.index,
        )

    def _has_alpha(self) -> bool:
        from cometnb._core.edit_inputs import resolve_source

        return resolve_source(self.data).has_alpha

    def to_dict(self) -> dict[str, Any]:
        return dict(self._doc)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return self.image._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        came = f" from {self.record_id}" if self.record_id else ""
        return f"<Source {self.role} {self.label!r} {self.width}x{self.height}{came}>"


def lineage_of(record: Any, get: Callable[[str], Any]) -> list[Any]:
    """``record``'s ancestors by ``parent``, oldest first, ending with ``record`` itself.

    A parent missing from the history (deleted, or in another folder) ends the chain; a loop
    (impossible unless documents were edited by hand) is cut where it repeats.
    """
    chain = [record]
    seen = {record.id}
    parent = record.parent
    while parent and parent not in seen:
        found = get(parent)
        if found is None:
            break
        chain.append(found)
        seen.add(found.id)
        parent = found.parent
    return chain[::-1]


def request_of(record: Any) -> ImageRequest:
    """A record's request again, its stored inputs included (``History.rerun`` sends it)."""
    pairs = [(s.role, s.to_input()) for s in record.sources]
    images = [i for role, i in pairs if role == "image"]
    layers = {role: i for role, i in pairs if role in ("mask", "markup")}
    data = {**record.request, "images": images or None, **layers}
    return ImageRequest.from_dict(data)


# Fields of the original request that a new edit does not inherit.
_NOT_INHERITED = ("input_fidelity", "image", "mask", "markup", "prompt", "model")


def edit_record(
    record: Any, prompt: str, client: Runner | None, overrides: dict[str, Any]
) -> Generation:
    """``record.edit(prompt, **overrides)``: its image ``image=K`` (default 0) as the input,
    its settings unless overridden, stored in its own history (through the Runner hook)."""
    index = int(overrides.pop("image", 0))
    mask = overrides.pop("mask", None)
    markup = overrides.pop("markup", None)
    model = overrides.pop("model", None) or record.model
    fields = {k: v for k, v in record.params.items() if k not in _NOT_INHERITED}
    fields.update(overrides)
    owner = history_at(record.folder)
    ref = f"@{record.id}:{index}" if index else f"@{record.id}"
    source = resolve_source(ref, history=owner)
    request = ImageRequest(prompt, model, images=[source], mask=mask, markup=markup, **fields)
    runner = client if client is not None else new_runner(owner)
    try:
        return runner.run(request)
    finally:
        if client is None:
            runner.close()
