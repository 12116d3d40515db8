"""Sources → result: the small strip of input images an edit started from, shown beside it.

Record cards, generation cards (while their request still carries the inputs), the comparison
view and the HTML gallery use :func:`with_sources` (the strip, an arrow, then the result, in one
row). A stored source's thumbnail comes from its file in the history folder; a mask is drawn
over a checkerboard, so its transparent (editable) area shows instead of one black square;
labels are escaped like every other user text.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from cometnb._core.errors import CometError
from cometnb._core.images import make_preview
from cometnb._core.text import clip
from cometnb._views.common import MUTED, data_uri, esc, img_tag
from cometnb._views.thumbs import thumb_uri

__all__ = ["SOURCE_PX", "mask_preview", "sources_html", "with_sources"]

SOURCE_PX = 96
_CHECK = ((255, 255, 255, 255), (204, 204, 204, 255))  # the usual "transparent" checkerboard
# One row that never wraps: the arrow must point at the result, not at an empty line end.
_ROW = "display:flex;align-items:center;gap:6px;flex-wrap:nowrap"


def with_sources(sources: Sequence[Any], result: str, px: int = SOURCE_PX) -> str:
    """``[inputs] → [result]`` in one row (the arrow points at the result); just ``result``
    for a plain generation. ``result`` is HTML (the images, or the error box)."""
    if not sources:
        return result
    return (
        f'<div class="cometnb-edit-pair" style="{_ROW}">{sources_html(sources, px)}'
        f'<div class="cometnb-edit-output" style="flex:1 1 auto;min-width:0">{result}</div></div>'
    )


def sources_html(sources: Sequence[Any], px: int = SOURCE_PX, *, arrow: str = "→") -> str:
    """The inputs as ``[thumb] [thumb] →`` (a grid of up to four columns for many inputs);
    empty text for a plain generation. ``arrow`` points where the result is.

    ``sources`` are stored :class:`~cometnb._storage.sources.Source` objects (``.image``,
    ``.role``, ``.label``) or, before storing, :class:`~cometnb._core.edit_inputs.ImageInput`.

    Example::

        >>> sources_html(history()[-1].sources)  # doctest: +SKIP
        '<div class="cometnb-sources" …'
    """
    if not sources:
        return ""
    figures = "".join(_figure(s, px) for s in sources)
    columns = min(4, math.ceil(len(sources) / 4))
    grid = f"display:grid;grid-template-columns:repeat({columns},auto);gap:4px"
    return (
        f'<div class="cometnb-sources" style="display:flex;align-items:center;gap:4px;'
        f'margin-bottom:4px;flex:none"><div style="{grid}">{figures}</div>'
        f'<span class="cometnb-arrow" style="font-size:20px;{MUTED}">{esc(arrow)}</span></div>'
    )


def _figure(source: Any, px: int) -> str:
    role = str(getattr(source, "role", "image"))
    what = "mask" if role == "mask" else "from"
    label = str(source.label)
    came = f" ({source.record_id})" if getattr(source, "record_id", None) else ""
    # A mask's caption says how to read it (its label stays in the tooltip).
    shown = "mask: checks = edited area" if role == "mask" else f"{what} {label}"
    # Wrapped over up to three lines under the thumbnail ("from generation 2026…" cut to one
    # line read "from generatio…"); the whole label and record are in the tooltip.
    caption = esc(clip(" ".join(shown.split()), 80, at_word=True))
    return (
        f'<figure class="cometnb-source" title="{esc(label + came)}" '
        f'style="margin:0;display:inline-block">{img_tag(_uri(source, px), px, what + " " + label)}'
        f'<figcaption style="{MUTED}{_CAPTION}max-width:{px}px">{caption}</figcaption></figure>'
    )


_CAPTION = (
    "font-size:11px;line-height:1.25;overflow-wrap:anywhere;overflow:hidden;"
    "display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;"
)


def _uri(source: Any, px: int) -> str | None:
    if str(getattr(source, "role", "image")) == "mask":
        try:
            data = source.image.data if hasattr(source, "image") else source.data
            return data_uri(mask_preview(data, px))
        except (CometError, ValueError, OSError):
            return None
    if hasattr(source, "image"):  # stored: read from the history folder
        return thumb_uri(source.image, px) if source.path is not None else None
    try:
        return data_uri(make_preview(source.data, px)[0])
    except (CometError, ValueError, OSError):
        return None


def mask_preview(data: bytes, px: int = SOURCE_PX) -> bytes:
    """A PNG of the mask over a checkerboard, at most ``px`` a side: the transparent (to be
    edited) area shows the checks, the kept area stays as drawn (opaque black for
    ``cometnb.mask``). Raises :class:`~cometnb._core.errors.CometError` for bytes that are not
    an image (or too many pixels to open)."""
    from PIL import Image

    from cometnb._core.images import open_image

    img, _fmt = open_image(data)  # checks the pixel cap before decoding
    with img:
        picture = img.convert("RGBA")
    picture.thumbnail((px, px))
    board = Image.new("RGBA", picture.size, _CHECK[0])
    square = max(4, px // 12)
    for y in range(0, picture.height, square):
        for x in range((y // square) % 2 * square, picture.width, 2 * square):
            board.paste(_CHECK[1], (x, y, x + square, y + square))
    board.alpha_composite(picture)
    buf = io.BytesIO()
    board.convert("RGB").save(buf, "PNG")
    return buf.getvalue()
