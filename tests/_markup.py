"""A markup layer as a 2.6 edit takes it: annotations only, on a fully transparent PNG."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def markup_png(
    side: int = 256, color: tuple[int, int, int] = (255, 0, 0), *, height: int | None = None
) -> bytes:
    """An arrow from the top-left towards the centre and a circle below it, nothing else;
    ``side`` wide and ``height`` (default ``side``) high."""
    high = height or side
    canvas = Image.new("RGBA", (side, high), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.line((side // 8, high // 8, side // 2, high // 2), fill=(*color, 255), width=6)
    draw.ellipse((side // 2, high // 2, side - 20, high - 20), outline=(*color, 255), width=5)
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()
