"""Small previews of generated images: what notebooks embed, never the multi-megabyte original.

:func:`make_preview` is on the hot path of every generated image: it uses Pillow's reduced
decoding (``draft`` for JPEG) and ``thumbnail(reducing_gap=…)`` so a 1024² photo-like PNG takes
a few tens of ms. Bytes that are not a (complete) image raise :class:`ResponseError`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from cometnb._core.errors import ResponseError
from cometnb._core.images import longest_side, mime_for, open_image

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["fits", "make_preview"]

_JPEG_QUALITY = 80
# WebP keeps alpha and, at these qualities, is as close to the pixels as JPEG 80 at about
# 60-70% of the bytes on photo-like images (chosen by measurement: benchmarks/preview_quality.py,
# the lowest quality whose PSNR matches today's JPEG 80). Every supported front end shows it.
_WEBP_QUALITY = {512: 45, 0: 70}  # by the preview's longer side: at least this many pixels
# libwebp's effort: 1 makes a 512 px preview in ~10 ms at the size and PSNR the default 4
# reaches in ~37 ms (measured on the photo-like image), so it is off the CPU soon.
_WEBP_METHOD = 1


def fits(data: bytes, max_px: int) -> bool:
    """True when neither side of the image is larger than ``max_px``."""
    return longest_side(data) <= max_px


def make_preview(data: bytes, max_px: int, *, encode: str = "auto") -> tuple[bytes, str]:
    """A downscaled copy for inline display: ``(bytes, mime)``.

    ``encode="auto"``: JPEG (quality 80) for opaque images, PNG when the image has real
    transparency; ``encode="webp"``: WebP (alpha kept), the history's stored previews. Never
    upscales: an image that already fits is returned as is, unless re-encoding makes it smaller.
    Raises :class:`ResponseError` for bytes that are not a (complete) image.
    """
    if max_px < 1:
        raise ValueError(f"max_px must be at least 1; got {max_px}")
    img, fmt = open_image(data)
    small = max(img.size) <= max_px
    if small and encode == "webp" and fmt in ("png", "jpeg", "webp", "gif"):
        return bytes(data), mime_for(data)  # already fits: shown exactly as generated
    try:
        # draft() lets libjpeg decode at 1/2, 1/4, 1/8 scale; a no-op for other formats.
        img.draft("RGB", (max_px, max_px))
        img = _displayable(img)  # decodes the pixels
        if not small:
            # reducing_gap=1.0: a box reduce() does nearly all the work (about 1 ms for
            # 1024² → 512²; the default 2.0 costs ~8 ms more for no visible gain at this size).
            img.thumbnail((max_px, max_px), reducing_gap=1.0)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ResponseError(f"the server sent a damaged {fmt.upper()} image ({exc})") from None
    preview = _encode_webp(img) if encode == "webp" else _encode(img)
    if small and len(preview[0]) >= len(data):
        return bytes(data), mime_for(data)
    return preview


def _displayable(img: PILImage.Image) -> PILImage.Image:
    """The pixels in a mode resizing and JPEG/PNG encoding handle: L, LA, RGB or RGBA."""
    if img.mode == "PA" or (img.mode not in ("RGBA", "LA") and "transparency" in img.info):
        return img.convert("RGBA")  # palette or colour-key transparency
    if img.mode in ("RGB", "RGBA", "L", "LA"):
        img.load()
        return img
    return img.convert("RGB")  # P, CMYK, YCbCr, 1, 16-bit grey …


def _encode(img: PILImage.Image) -> tuple[bytes, str]:
    out = io.BytesIO()
    if _has_alpha(img):
        img.save(out, "PNG", compress_level=6)
        return out.getvalue(), "image/png"
    opaque = {"RGBA": "RGB", "LA": "L"}.get(img.mode)
    (img.convert(opaque) if opaque else img).save(out, "JPEG", quality=_JPEG_QUALITY)
    return out.getvalue(), "image/jpeg"


def _encode_webp(img: PILImage.Image) -> tuple[bytes, str]:
    out = io.BytesIO()
    side = max(img.size)
    quality = next(q for px, q in sorted(_WEBP_QUALITY.items(), reverse=True) if side >= px)
    wanted = "RGBA" if _has_alpha(img) else "RGB"  # WebP stores colour, with or without alpha
    if img.mode != wanted:
        img = img.convert(wanted)
    img.save(out, "WEBP", quality=quality, method=_WEBP_METHOD)
    return out.getvalue(), "image/webp"


def _has_alpha(img: PILImage.Image) -> bool:
    """True only for visible transparency: an all-opaque alpha channel still gets a JPEG."""
    if img.mode not in ("RGBA", "LA"):
        return False
    low = img.getchannel("A").getextrema()[0]  # one band: (min, max)
    return isinstance(low, (int, float)) and low < 255
