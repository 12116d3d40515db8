"""``cometnb.mask``: the edit mask for the common "change only this region" case.

The API's rule (API_FACTS.md §7): a PNG with an alpha channel, the same width and height as
the first input image; fully transparent pixels mark where to edit. Building one by hand in an
image editor is where most mask errors come from (no alpha, wrong size), so this makes it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from cometnb._core.errors import ValidationError
from cometnb._core.sources import HistoryLookup, resolve_source

__all__ = ["mask"]

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
