"""Stored outcomes of one request: :class:`GeneratedImage` (one image file, read lazily) and
:class:`Generation` (the images a request produced, or the error that stopped it).

Both are re-exported by :mod:`cometnb._core.models`, the name everything else imports them by.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cometnb._core.settings import active

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from cometnb._core.content_credentials import ContentCredentials
    from cometnb._core.cost import Cost
    from cometnb._core.errors import CometError

Status = Literal["ok", "error", "cancelled"]


class GeneratedImage:
    """One generated image, stored on disk; bytes and pixels are read only when asked for.

    ``path`` is the original file exactly as the API returned it. ``preview_path`` (if the
    history stored one) is a small JPEG/PNG used for inline display. An image that was never
    stored (``Client(history=False)``) keeps its bytes in memory and has ``path=None``.
    """

    __slots__ = (
        "_data",
        "format",
        "height",
        "path",
        "preview_path",
        "revised_prompt",
        "source",
        "width",
    )

    def __init__(
        self,
        path: Path | None,
        format: str,
        width: int,
        height: int,
        revised_prompt: str | None = None,
        *,
        data: bytes | None = None,
        preview_path: Path | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        # Where it came from (prompt, model, params, record_id): written into saved copies.
        self.source = dict(source) if source else None
        self.format = format
        self.width = width
        self.height = height
        self.revised_prompt = revised_prompt
        self.preview_path = preview_path
        self._data = data

    @property
    def data(self) -> bytes:
        """The original bytes (read from disk on each access when stored; not cached)."""
        if self._data is not None:
            return self._data
        if self.path is None:
            raise FileNotFoundError("image has neither a file nor bytes")
        return self.path.read_bytes()

    def save(
        self, path: str | os.PathLike[str], *, metadata: bool = True, keep_c2pa: bool = True
    ) -> Path:
        """Write a copy to ``path`` (a file, or a folder to keep the original's name).

        The copy is labelled AI-generated (IPTC ``DigitalSourceType``) and carries its
        provenance (prompt, model, settings, record id, cometnb version) in XMP and, for PNG,
        text chunks, unless ``metadata`` is False; the pixels are the server's, never
        re-encoded, and the history's original is not touched. The suffix must match the
        format (no conversion happens here).

        When the original carries the server's Content Credentials (C2PA), ``keep_c2pa=True``
        keeps them valid: the file is the server's bytes and the labels go in ``<stem>.xmp``
        beside it; ``keep_c2pa=False`` drops the manifest and writes the labels into the file.
        Either way the copy's metadata says which (``content_credentials``).

        Example::

            >>> gen.image.save("lighthouse.png")  # doctest: +SKIP
            PosixPath('lighthouse.png')
        """
        from cometnb._core.provenance import save_copy

        name = self.path.name if self.path is not None else None
        return save_copy(
            self.data,
            self.format,
            Path(path),
            name=name,
            source=self.source,
            metadata=metadata,
            keep_c2pa=keep_c2pa,
        )

    @property
    def c2pa(self) -> ContentCredentials | None:
        """The original's Content Credentials (C2PA manifest: issuer, claim generator, digital
        source type, ``state``); ``None`` when it carries none. Read on first use, cached."""
        from cometnb._core.content_credentials import read_credentials

        if self._data is not None:
            return read_credentials(self._data)
        return read_credentials(self.path) if self.path is not None else None

    def pil(self) -> PILImage.Image:
        """The image as a ``PIL.Image`` (decoded now, from disk)."""
        from PIL import Image

        source: Any = self.path if self._data is None else __import__("io").BytesIO(self._data)
        img = Image.open(source)
        img.load()
        return img

    def preview(self, max_px: int | None = None) -> tuple[bytes, str]:
        """A downscaled preview for inline display: ``(bytes, mime type)``."""
        from cometnb._core.images import mime_for
        from cometnb._core.previews import make_preview

        px = max_px or active().thumbnail_px
        cached = self._stored_preview()
        if cached is not None:
            side = _preview_side(cached)
            if side > px:
                # Smaller than the stored preview (a grid's 256 px): scale the preview, a few
                # ms, rather than decode the original, tens of ms for a 3 MB PNG.
                return make_preview(cached, px, encode="webp")
            if side >= min(px, max(self.width, self.height)):
                return cached, mime_for(cached)
        return make_preview(self.data, px, encode="webp")

    def _stored_preview(self) -> bytes | None:
        """The history's preview: read, or made now when the history has not written it yet
        (previews are made after the record commits, off the request path)."""
        if self.preview_path is None:
            return None
        try:
            return self.preview_path.read_bytes()
        except OSError:
            pass
        if self.path is None or self.preview_path == self.path:
            return None
        from cometnb._core.preview_hook import missing_preview

        return missing_preview(self.path, self.preview_path)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        from cometnb._core import display

        return {"text/html": display.render("image", self), "text/plain": repr(self)}

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "in memory"
        return f"<GeneratedImage {self.format} {self.width}x{self.height} {where}>"


def _preview_side(data: bytes) -> int:
    """The longer side of a stored preview; 0 when it is damaged (then the original is used)."""
    from cometnb._core.errors import CometError
    from cometnb._core.images import longest_side

    try:
        return longest_side(data)
    except CometError:
        return 0


@dataclass
class Generation:
    """The outcome of one request.

    ``images`` is empty and ``error`` is set when it failed (``generate_many`` returns failed
    generations instead of raising; ``generate`` raises). Displays itself as a card.

    Example::

        >>> gen = Client().generate("a red fox in snow", model="gpt-image-1-mini")  # doctest: +SKIP
        >>> gen.images[0].path  # doctest: +SKIP
        PosixPath('cometnb-history/images/20261122-101500-3f2a-0.png')
    """

    request: dict[str, Any]
    images: list[GeneratedImage] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    created: int | None = None
    elapsed_s: float = 0.0
    record_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: CometError | None = None
    status: Status = "ok"
    synthetic: bool = False
    # What it cost, as stored on its history record; priced on first use when not given.
    _cost: Cost | None = field(default=None, repr=False, compare=False)

    @property
    def cost(self) -> Cost:
        """What this request cost (``$0.053``; ``≈`` when estimated; ``usd=None``: unknown)."""
        if self._cost is None:
            from cometnb._core.costing import generation_cost

            self._cost = generation_cost(self)
        return self._cost

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def budget_stopped(self) -> bool:
        """True when a budget stopped this request before it was sent."""
        from cometnb._core.budget import BudgetError

        return isinstance(self.error, BudgetError)

    @property
    def state(self) -> str:
        """``ok``, ``error``, ``cancelled`` or ``not sent (budget)`` (what views show)."""
        return "not sent (budget)" if self.budget_stopped else self.status

    @property
    def image(self) -> GeneratedImage:
        """The first image (most requests ask for one)."""
        if not self.images:
            reason = f": {self.error}" if self.error else ""
            raise IndexError(f"this generation has no images{reason}")
        return self.images[0]

    @property
    def prompt(self) -> str:
        return str(self.request.get("prompt", ""))

    @property
    def model(self) -> str:
        return str(self.request.get("model", ""))

    def raise_for_error(self) -> Generation:
        if self.error is not None:
            raise self.error
        return self

    def _repr_html_(self) -> str:
        from cometnb._core import display

        return display.render("generation", self)

    def __repr__(self) -> str:
        state = f"{len(self.images)} image(s)" if self.ok else f"{self.state}: {self.error}"
        return f"<Generation {self.model} {state} in {self.elapsed_s:.1f}s record={self.record_id}>"
