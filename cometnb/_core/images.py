"""Image bytes: decoding and checking what the API returned, and the small previews notebooks
embed (never the multi-megabyte original, never an SVG's markup: its preview is a raster drawn
by :mod:`cometnb._core.svg`; an animated GIF's preview is animated).

:func:`make_preview` is on the hot path of every generated image: it uses Pillow's reduced
decoding (``draft`` for JPEG) and ``thumbnail(reducing_gap=...)``. Bytes that are not a
(complete) image raise :class:`ResponseError`.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import struct
import sys
import warnings
from typing import TYPE_CHECKING

from cometnb._core.errors import ResponseError, redact
from cometnb._core.settings import active
from cometnb._core.svg import check_svg, is_svg, render_svg
from cometnb._core.text import ELLIPSIS, clip

__all__ = [
    "data_uri",
    "decode_b64_image",
    "file_extension",
    "fits",
    "inspect_image",
    "longest_side",
    "make_preview",
    "mime_for",
    "mime_type",
    "open_image",
    "pixel_excess",
    "sniff_format",
]


# --- image bytes ------------------------------------------------------------------------------

if TYPE_CHECKING:
    from PIL import Image as PILImage


_MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}


def mime_type(fmt: str | None) -> str:
    """The content type of an image format name (``"png"``); unknown ones are octet-stream."""
    return _MIME.get(fmt or "", "application/octet-stream")


def file_extension(fmt: str | None, default: str = "bin") -> str:
    """The file-name extension of an image format name: ``jpg`` for ``"jpeg"``, the name
    itself for the others (``png``, ``webp``, ``gif``, ``svg``), ``default`` for none."""
    if not fmt:
        return default
    return "jpg" if fmt == "jpeg" else fmt


_PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}


_WHITESPACE = re.compile(rb"\s+")


_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/=]")


def sniff_format(data: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"webp"``, ``"gif"`` or ``"svg"`` from the first bytes; ``None``
    otherwise.

    Example::

        >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n...")
        'png'
    """
    head = bytes(data[:12])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return "svg" if is_svg(data) else None


def mime_for(data: bytes) -> str:
    """The MIME type of image bytes (``application/octet-stream`` when not recognised)."""
    return mime_type(sniff_format(data))


def data_uri(data: bytes) -> str:
    """``data:<mime>;base64,…`` for embedding bytes in HTML; ``ValueError`` for an SVG (it
    may carry scripts: HTML gets its raster preview, :func:`make_preview`)."""
    mime = mime_for(data)
    if mime == _MIME["svg"]:
        raise ValueError("an SVG is never embedded in HTML; embed its raster preview")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def decode_b64_image(text: str | bytes) -> bytes:
    """Decode a ``b64_json`` payload strictly; a ``data:`` URI prefix and whitespace are allowed.

    Raises :class:`ResponseError` naming the problem (empty, bad character, bad length).
    """
    if isinstance(text, str) and text and text.isascii() and text[:5].lower() != "data:":
        # What JSON gives: ``a2b_base64`` reads ASCII text as it is, so the payload (megabytes)
        # is not copied into bytes first.
        try:
            return _strict_b64(text)
        except (binascii.Error, ValueError):
            pass  # whitespace, a bad character: the checks below say which
    raw = _b64_payload(text)
    try:
        return _strict_b64(raw)
    except (binascii.Error, ValueError):
        pass  # maybe wrapped in lines; retry without whitespace (rare, so off the fast path)
    cleaned = _WHITESPACE.sub(b"", raw)
    try:
        return _strict_b64(cleaned)
    except (binascii.Error, ValueError):
        raise ResponseError(_b64_problem(cleaned)) from None


def _b64_payload(text: str | bytes) -> bytes:
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            bad = next(c for c in text if ord(c) > 127)
            raise ResponseError(f"image data is not valid base64 (character {bad!r})") from None
    elif isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
    else:
        raise ResponseError(f"image data must be a base64 string; got {type(text).__name__}")
    raw = raw.strip()
    if raw[:5].lower() == b"data:":
        header, comma, rest = raw.partition(b",")
        if not comma or not header.lower().endswith(b";base64"):
            raise ResponseError("image data is a data: URI without ';base64,'")
        raw = rest
    if not raw:
        raise ResponseError("image data is empty")
    return raw


def _strict_b64(raw: str | bytes) -> bytes:
    if sys.version_info >= (3, 11):
        # C fast path; rejects whitespace and characters outside the alphabet.
        return binascii.a2b_base64(raw, strict_mode=True)
    return base64.b64decode(raw, validate=True)


def _b64_problem(cleaned: bytes) -> str:
    bad = _NOT_B64.search(cleaned)
    if bad:
        char = bad.group().decode("latin-1")
        return f"image data is not valid base64 (character {char!r} at offset {bad.start()})"
    if len(cleaned) % 4:
        return (
            f"image data is not valid base64 ({len(cleaned)} characters is not a multiple "
            "of 4: truncated?)"
        )
    return "image data is not valid base64 (misplaced '=' padding)"


def inspect_image(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` read from the header, plus a cheap check of the tail.

    An SVG is parsed as XML (:func:`~cometnb._core.svg.check_svg`) and measured.
    Raises :class:`ResponseError` when the bytes are not an image or are visibly truncated.
    """
    if sniff_format(data) == "svg":  # a raster's magic bytes answer first: no text sniff
        info = check_svg(data)
        return "svg", info.width, info.height
    img, fmt = open_image(data)
    width, height = img.size
    return fmt, width, height


def longest_side(data: bytes) -> int:
    """The image's longer side in pixels, from the header (:class:`ResponseError` if none)."""
    _, width, height = inspect_image(data)
    return max(width, height)


def pixel_excess(data: bytes) -> str | None:
    """``"W×H pixels"`` when the header declares more than ``Limits.max_pixels`` (nothing is
    decoded); ``None`` when it does not, or the bytes are not an image. Lets an input image
    be refused as too large rather than as damaged."""
    from PIL import Image

    width = height = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:  # lazy: reads the header only
                width, height = img.size
    except Image.DecompressionBombError:
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            return "more pixels than allowed"
        width, height = struct.unpack(">II", bytes(data[16:24]))  # the IHDR chunk
    except Exception:  # not an image at all: the caller says so
        return None
    return f"{width}×{height} pixels" if width * height > active().limits.max_pixels else None


def _too_many_pixels(data: bytes, width: int | None, height: int | None) -> ResponseError:
    if (width is None or height is None) and data[:8] == b"\x89PNG\r\n\x1a\n":
        width, height = struct.unpack(">II", bytes(data[16:24]))  # the IHDR chunk
    cap = active().limits.max_pixels
    size = f"{width}×{height} pixels" if width and height else "more pixels than allowed"
    return ResponseError(
        f"the server sent an image of {size}, more than the {cap:,} pixels cometnb decodes "
        "(Limits.max_pixels); it was not opened",
        hint="Such an image is almost certainly a decompression bomb; the generation may "
        "have been billed.",
    )


def _open(data: bytes) -> PILImage.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its limit; either way the image is refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # lazy: reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(data, None, None) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        sniffed = sniff_format(data)
        if sniffed:
            raise ResponseError(
                f"the server sent a damaged {sniffed.upper()} image ({len(data):,} bytes)"
            ) from None
        raise ResponseError(
            f"the server sent {len(data):,} bytes that are not an image "
            f"(starts with {_excerpt(data)})"
        ) from None
    width, height = img.size
    if width * height > active().limits.max_pixels:
        raise _too_many_pixels(data, width, height)
    return img


def open_image(data: bytes) -> tuple[PILImage.Image, str]:
    """``(image, format)``: the bytes opened lazily by Pillow (header read, pixels not yet).

    Raises :class:`ResponseError` for bytes that are not an image or are visibly truncated.
    """
    sniffed = sniff_format(data)
    # Before Pillow: some decoders (WebP) fail on a cut body with a vaguer error.
    if sniffed and not _tail_complete(sniffed, data):
        raise ResponseError(
            f"the server sent a truncated {sniffed.upper()} image ({len(data):,} bytes)"
        )
    img = _open(data)
    fmt = _PIL_FORMATS.get(img.format or "", (img.format or "unknown").lower())
    return img, fmt


def _excerpt(data: bytes, limit: int = 32) -> str:
    """The first bytes as printable ASCII (others escaped), quoted; safe to show a user.

    Secrets are redacted *before* clipping, so not even a prefix of the key can show.
    """
    if not data:
        return "nothing"
    window = data[: limit + 1024]
    text = "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in window)
    if len(data) > len(window):
        text += ELLIPSIS  # cut by the window even if redaction made the text short
    # limit + 1: ``limit`` characters are shown before the ellipsis.
    return f"'{clip(redact(text), limit + 1)}'"


def _tail_complete(fmt: str, data: bytes) -> bool:
    # Header-only decoding cannot see a cut-off body, so check each format's trailer cheaply.
    # Lenient on purpose: a few bytes of trailing padding are tolerated.
    tail = data[-64:]
    if fmt == "png":
        return b"IEND" in tail
    if fmt == "jpeg":
        return b"\xff\xd9" in tail
    if fmt == "gif":
        return b";" in tail[-8:]
    if fmt == "webp":
        return int.from_bytes(data[4:8], "little") + 8 <= len(data)
    return True


# --- previews ---------------------------------------------------------------------------------

if TYPE_CHECKING:
    from PIL import Image as PILImage


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
    An SVG is drawn to a raster first (never returned as it is); an animated GIF gives an
    animated preview (:func:`_animated_preview`).
    Raises :class:`ResponseError` for bytes that are not a (complete) image.
    """
    if max_px < 1:
        raise ValueError(f"max_px must be at least 1; got {max_px}")
    if sniff_format(data) == "svg":
        data = render_svg(data, max_px)  # a PNG exactly max_px on its longer side
    img, fmt = open_image(data)
    frame_count: int = getattr(img, "n_frames", 1)
    if frame_count > 1 and fmt in ("gif", "webp"):
        return _animated_preview(img, frame_count, max_px, encode)
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


# An animated preview keeps at most this many frames (the API sends 2-16): a longer animation
# is thinned, each kept frame lasting as long as the frames it stands for.
_MAX_PREVIEW_FRAMES = 32


def _animated_preview(
    img: PILImage.Image, frame_count: int, max_px: int, encode: str
) -> tuple[bytes, str]:
    """Every frame scaled to fit ``max_px``, with its duration: an animated WebP (``webp``)
    or GIF (``auto``: what the notebook's cards have always been able to show)."""
    from PIL import ImageSequence

    # The API shares one pixel budget among all frames; decode no more than a few of those.
    if frame_count * img.width * img.height > 4 * active().limits.max_pixels:
        raise ResponseError(
            f"the server sent an animation of {frame_count:,} frames of {img.width}×"
            f"{img.height} pixels, more than cometnb decodes for a preview"
        )
    frames: list[PILImage.Image] = []
    durations: list[int] = []
    step = -(-frame_count // _MAX_PREVIEW_FRAMES)  # ceil: frames per kept frame
    try:
        for index, frame in enumerate(ImageSequence.Iterator(img)):
            duration = int(frame.info.get("duration", 100) or 100)
            if index % step:
                durations[-1] += duration
                continue
            small = frame.convert("RGBA")
            small.thumbnail((max_px, max_px), reducing_gap=1.0)
            frames.append(small)
            durations.append(duration)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ResponseError(f"the server sent a damaged animated image ({exc})") from None
    out = io.BytesIO()
    first, rest = frames[0], frames[1:]
    if encode == "webp":
        side = max(first.size)
        quality = next(q for px, q in sorted(_WEBP_QUALITY.items(), reverse=True) if side >= px)
        first.save(
            out, "WEBP", save_all=True, append_images=rest, duration=durations, loop=0,
            quality=quality, method=_WEBP_METHOD,
        )  # fmt: skip
        return out.getvalue(), "image/webp"
    first.save(
        out, "GIF", save_all=True, append_images=rest, duration=durations, loop=0, disposal=2
    )
    return out.getvalue(), "image/gif"


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
