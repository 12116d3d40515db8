"""A markup layer as a 2.6 edit takes it: annotations only, on a fully transparent PNG."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def markup_png(side: int = 256, color: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """An arrow from the top-left towards the centre and a circle below it, nothing else."""
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.line((side // 8, side // 8, side // 2, side // 2), fill=(*color, 255), width=6)
    draw.ellipse((side // 2, side // 2, side - 20, side - 20), outline=(*color, 255), width=5)
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()
