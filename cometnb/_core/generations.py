"""Requests and results: the data that flows between the client, the history and the views.

* :class:`ImageRequest` — one request; ``validate()`` refuses, before any I/O, what the model
  cannot take (the registry's rows, the checks in ``validation``).
* :class:`ClientEvent` — what ``on_event`` callbacks receive.
* :class:`ApiImage` / :class:`ApiResult` — a parsed, decoded API response, not yet stored.
* :class:`GeneratedImage` — one stored image: a file on disk, read lazily.
* :class:`Generation` — the outcome of one request (images, or the error that stopped it).
* :class:`Grid` — the outcome of several requests laid out on named axes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cometnb._core.edit_inputs import EditBody, ImageInput, resolve_source, resolve_sources
from cometnb._core.model_registry import NO_INPUT_IMAGE
from cometnb._core.settings import Settings, active
from cometnb._core.validation import validate_edit

__all__ = [
    "SESSION_DEFAULT_FIELDS",
    "ApiImage",
    "ApiResult",
    "ClientEvent",
    "GeneratedImage",
    "Generation",
    "Grid",
    "GridCell",
    "ImageRequest",
    "Status",
]


# --- stored results ---------------------------------------------------------------------------

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from cometnb._core.errors import CometError
    from cometnb._core.prices import Cost
    from cometnb._core.provenance import ContentCredentials
    from cometnb._core.secret import Secret


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
        from cometnb._core.provenance import read_credentials

        if self._data is not None:
            return read_credentials(self._data)
        return read_credentials(self.path) if self.path is not None else None

    def pil(self) -> PILImage.Image:
        """The image as a ``PIL.Image`` (decoded now, from disk). An SVG is drawn at its
        intrinsic size (external references left out), within ``ByteLimits.max_pixels``."""
        from PIL import Image

        if self.format == "svg":
            return self._svg_pixels()
        source: Any = self.path if self._data is None else __import__("io").BytesIO(self._data)
        img = Image.open(source)
        img.load()
        return img

    def _svg_pixels(self) -> PILImage.Image:
        import io

        from PIL import Image

        from cometnb._core.errors import ValidationError
        from cometnb._core.svg import render_svg

        if self.width * self.height > active().limits.max_pixels:
            raise ValidationError(
                f"this SVG's intrinsic size, {self.width}×{self.height}, is more pixels than "
                "ByteLimits.max_pixels allows; use .preview(px) for a smaller raster"
            )
        img = Image.open(io.BytesIO(render_svg(self.data, max(self.width, self.height))))
        img.load()
        return img

    def preview(self, max_px: int | None = None) -> tuple[bytes, str]:
        """A downscaled preview for inline display: ``(bytes, mime type)``."""
        from cometnb._core.images import make_preview, mime_for

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
        from cometnb._core.session import missing_preview

        return missing_preview(self.path, self.preview_path)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        from cometnb._core.session import render

        return {"text/html": render("image", self), "text/plain": repr(self)}

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "in memory"
        return f"<GeneratedImage {self.format} {self.width}x{self.height} {where}>"


def _preview_side(data: bytes) -> int:
    """The longer side of a stored preview; 0 when it is damaged or not a raster (an SVG named
    as its own preview): then the preview is made from the original."""
    from cometnb._core.errors import CometError
    from cometnb._core.images import longest_side, sniff_format

    if sniff_format(data) == "svg":
        return 0
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
            from cometnb._core.prices import generation_cost

            self._cost = generation_cost(self)
        return self._cost

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def budget_stopped(self) -> bool:
        """True when a budget stopped this request before it was sent."""
        from cometnb._core.errors import BudgetError

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
        from cometnb._core.session import render

        return render("generation", self)

    def __repr__(self) -> str:
        state = f"{len(self.images)} image(s)" if self.ok else f"{self.state}: {self.error}"
        return f"<Generation {self.model} {state} in {self.elapsed_s:.1f}s record={self.record_id}>"


# --- requests, events and API answers ---------------------------------------------------------

if TYPE_CHECKING:
    from cometnb._core.prices import Cost


# The ``%config CometImg`` defaults a request takes when it does not name the field itself.
SESSION_DEFAULT_FIELDS = ("size", "quality")


log = logging.getLogger("cometnb")


class ImageRequest:
    """One image-generation request: a prompt, a model and any other API fields.

    Fields whose value is ``None`` are dropped, so optional arguments can be passed through
    unconditionally. Nothing is sent until a client runs it; ``validate()`` checks it first.
    ``images=[...]`` (any edit source: path, ``@-1``, bytes, PIL image, record…), ``mask=`` and
    ``markup=`` (2.6: annotations drawn on a transparent PNG) make it an edit
    (``POST /v1/images/edits``, or references in JSON for seedream).

    Example::

        >>> req = ImageRequest("a lighthouse at dusk", model="dall-e-3", size="1792x1024")
        >>> req.validate().to_body()["size"]
        '1792x1024'
    """

    __slots__ = ("fields", "images", "markup", "mask", "model", "prompt")

    def __init__(
        self,
        prompt: str,
        model: str | None = None,
        *,
        images: Any = None,
        mask: Any = None,
        markup: Any = None,
        **fields: Any,
    ) -> None:
        self.prompt = prompt
        # The one place the model default (%config CometImg.model) is applied.
        self.model = model or active().model
        self.fields: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        # Edit inputs, resolved now (a bad source is refused here, naming it; @-1 looks in the
        # active history): one source or a list; a mask applies to the first image.
        self.images: tuple[ImageInput, ...] = (
            tuple(resolve_sources(images)) if images is not None else ()
        )
        if images is not None and not self.images:
            # An empty list must not fall back to a (billed) plain generation.
            from cometnb._core.errors import ValidationError

            raise ValidationError(NO_INPUT_IMAGE, field="image")
        self.mask: ImageInput | None = resolve_source(mask) if mask is not None else None
        self.markup: ImageInput | None = resolve_source(markup) if markup is not None else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRequest:
        """Build from a plain dict of API fields (``prompt`` required, ``model`` optional)."""
        rest = {k: v for k, v in data.items() if k not in ("prompt", "model")}
        if "prompt" not in data:
            from cometnb._core.errors import ValidationError

            raise ValidationError("request has no 'prompt'", field="prompt")
        return cls(data["prompt"], data.get("model"), **rest)

    def estimate(self) -> Cost:
        """What this request will cost, before it is sent (``Cost.usd`` ``None``: unknown).

        Priced with the table in force (``cometnb.prices()``); ``auto`` quality or size is
        estimated at the most expensive choice.

        Example::

            >>> req = ImageRequest("a cat", "gpt-image-2", size="1024x1024", quality="medium")
            >>> req.estimate().label, req.estimate().basis
            ('≈ $0.05', '1756 image tokens out, 8 in')
        """
        from cometnb._core.prices import estimate

        return estimate(self)

    def validate(self, key: Secret | None = None) -> ImageRequest:
        """Raise :class:`ValidationError` if the model cannot take this request, or its text
        cannot be sent (a lone surrogate, the API key: ``key``, else the one a request would
        use; see :func:`~cometnb._core.validation.check_text`); return self."""
        from cometnb._core.validation import check_text, validate_request

        check_text({"prompt": self.prompt, **self.fields}, key)
        validate_request(self.prompt, self.model, self.fields)
        validate_edit(self.model, self.images, self.mask, self.fields, markup=self.markup)
        return self

    @property
    def is_edit(self) -> bool:
        """True when the request carries input images."""
        return bool(self.images)

    def to_body(self) -> dict[str, Any]:
        """The body to send (no key: auth travels in a header).

        For an edit it is an :class:`~cometnb._core.edit_inputs.EditBody`: the same plain dict of
        text fields, carrying the input images for the upload.
        """
        body = {"model": self.model, "prompt": self.prompt, **self.fields}
        return EditBody(body, self.images, self.mask, self.markup) if self.images else body

    def with_overrides(self, **overrides: Any) -> ImageRequest:
        """A copy with some fields replaced (``None`` removes a field; ``images=``/``mask=``/
        ``markup=`` replace the inputs)."""
        # An explicit images=[] stays empty (and is refused); only "not given" means none.
        images = overrides.pop("images") if "images" in overrides else (self.images or None)
        mask = overrides.pop("mask", self.mask)
        markup = overrides.pop("markup", self.markup)
        body = {**self.to_body(), **overrides}
        data = {k: v for k, v in body.items() if v is not None}
        return ImageRequest.from_dict({**data, "images": images, "mask": mask, "markup": markup})

    def with_session_defaults(self, settings: Settings | None = None) -> ImageRequest:
        """A copy with the ``%config`` size/quality defaults it lacks, where its model takes them.

        A configured default the model rejects (say a gpt-image size with dall-e-3) is skipped
        rather than blamed on the user, who did not ask for it in this call; a field the request
        names keeps its own value. ``settings`` defaults to the active ones.

        Example::

            >>> req = ImageRequest("a kite", "dall-e-3")
            >>> req.with_session_defaults(Settings(size="1536x1024", quality="hd")).fields
            {'quality': 'hd'}
        """
        settings = settings or active()
        request = self
        for name in SESSION_DEFAULT_FIELDS:
            default = getattr(settings, name)
            if default is None or name in request.fields:
                continue
            candidate = request.with_overrides(**{name: default})
            if _rejects(candidate, name):
                # Visible to anyone debugging "why was my %config size not sent?".
                log.info(
                    "cometnb: CometImg.%s=%r does not apply to %s; not sent",
                    name,
                    default,
                    request.model,
                )
                continue
            request = candidate
        return request

    @property
    def streaming(self) -> bool:
        return bool(self.fields.get("stream"))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ImageRequest)
            and self.to_body() == other.to_body()
            and (self.images, self.mask, self.markup) == (other.images, other.mask, other.markup)
        )

    def __hash__(self) -> int:
        return hash((self.prompt, self.model))

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.fields.items())
        if self.images:
            extra += f", images=[{', '.join(repr(i.label) for i in self.images)}]"
        if self.mask is not None:
            extra += f", mask={self.mask.label!r}"
        if self.markup is not None:
            extra += f", markup={self.markup.label!r}"
        return f"ImageRequest({self.prompt!r}, model={self.model!r}{extra})"


def _rejects(request: ImageRequest, name: str) -> bool:
    """True when validation fails because of field ``name`` (other problems surface later)."""
    from cometnb._core.errors import ValidationError

    try:
        request.validate()
    except ValidationError as exc:
        return exc.field == name
    return False


@dataclass(frozen=True)
class ClientEvent:
    """Progress reported by a client while one request runs (for status lines and panels).

    kinds: ``"sending"`` (attempt N starts), ``"waiting"`` (sleeping ``wait_s`` before a retry,
    ``reason`` says why, e.g. "HTTP 429"), ``"partial"`` (a streamed preview arrived),
    ``"received"`` (the answer is read: the server is done with the request, so a concurrency
    slot may go to the next one), ``"downloading"`` (fetching URL results), ``"storing"``
    (writing to the history).

    ``"sending"`` comes right before each POST leaves; a ``"waiting"`` before a retry has
    ``may_be_billed=True`` when an earlier attempt of this request may have been billed (a read
    timeout or 504 retried under ``retry_billed=True``), so a batch keeps such an item in flight.
    """

    kind: Literal["sending", "waiting", "partial", "received", "downloading", "storing"]
    attempt: int = 1
    wait_s: float | None = None
    reason: str | None = None
    partial_index: int | None = None
    partial_image: bytes | None = None
    may_be_billed: bool = False


@dataclass
class ApiImage:
    """One decoded image from a response: bytes exactly as the API sent them."""

    data: bytes
    format: str  # sniffed from the bytes: "png" | "jpeg" | "webp" | "gif"
    width: int
    height: int
    revised_prompt: str | None = None


@dataclass
class ApiResult:
    """A successful response, parsed and decoded, before it is stored."""

    images: list[ApiImage]
    created: int | None = None
    usage: dict[str, Any] | None = None
    # Top-level response metadata GPT image models send: size, quality, background, output_format.
    meta: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False  # True when the answer came from cometnb's simulator


@dataclass
class GridCell:
    """One request of a grid: where it sits on the axes, what was asked and what came back."""

    coords: dict[str, Any]
    request: ImageRequest
    generation: Generation | None = None  # None while pending


@dataclass
class Grid:
    """Several generations laid out on named axes (a ``%%cometimg`` comparison).

    ``axes`` maps each axis that varies (``"model"``, ``"size"``, ``"quality"``, ``"format"``,
    ``"background"``, ``"prompt"``) to its values in order; ``cells`` follow the cartesian
    product in that order. ``grid[i]`` is the i-th Generation; iteration yields Generations.
    """

    axes: dict[str, list[Any]]
    cells: list[GridCell]

    @property
    def generations(self) -> list[Generation]:
        return [c.generation for c in self.cells if c.generation is not None]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    def __len__(self) -> int:
        return len(self.cells)

    def __getitem__(self, index: int) -> Generation | None:
        return self.cells[index].generation

    def __iter__(self) -> Iterator[Generation]:
        return iter(self.generations)

    def cell(self, **coords: Any) -> GridCell:
        """The cell at the given axis values, e.g. ``grid.cell(model="dall-e-3")``."""
        for c in self.cells:
            if all(c.coords.get(k) == v for k, v in coords.items()):
                return c
        raise KeyError(coords)

    def _repr_html_(self) -> str:
        from cometnb._core.session import render

        return render("grid", self)

    def __repr__(self) -> str:
        done = sum(1 for c in self.cells if c.generation is not None)
        shape = "x".join(str(n) for n in self.shape) or "1"
        skipped = sum(1 for g in self.generations if g.budget_stopped)
        failed = sum(1 for g in self.generations if not g.ok) - skipped
        budget = f", {skipped} not sent (budget)" if skipped else ""
        return f"<Grid {shape} {done}/{len(self.cells)} done, {failed} failed{budget}>"
