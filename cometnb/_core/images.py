"""Image payloads: base64 → bytes, format sniffing and header inspection.

Everything here works on bytes in memory and raises :class:`ResponseError` when the server sent
something that is not a usable image, with a message that says what was wrong. Downscaled
previews for display are made in :mod:`cometnb._core.previews`.
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
from cometnb._core.text import ELLIPSIS, clip

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "data_uri",
    "decode_b64_image",
    "inspect_image",
    "longest_side",
    "mime_for",
    "open_image",
    "pixel_excess",
    "sniff_format",
]

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}
_WHITESPACE = re.compile(rb"\s+")
_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/=]")


def sniff_format(data: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"webp"`` or ``"gif"`` from the magic bytes; ``None`` otherwise.

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
    return None


def mime_for(data: bytes) -> str:
    """The MIME type of image bytes (``application/octet-stream`` when not recognised)."""
    return _MIME.get(sniff_format(data) or "", "application/octet-stream")


def data_uri(data: bytes) -> str:
    """``data:<mime>;base64,…`` for embedding bytes in HTML."""
    return f"data:{mime_for(data)};base64,{base64.b64encode(data).decode('ascii')}"


# --- base64 ----------------------------------------------------------------------------------


def decode_b64_image(text: str | bytes) -> bytes:
    """Decode a ``b64_json`` payload strictly; a ``data:`` URI prefix and whitespace are allowed.

    Raises :class:`ResponseError` naming the problem (empty, bad character, bad length).
    """
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


def _strict_b64(raw: bytes) -> bytes:
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


# --- inspection ------------------------------------------------------------------------------


def inspect_image(data: bytes) -> tuple[str, int, int]:
    """``(format, width, height)`` read from the header, plus a cheap check of the tail.

    Raises :class:`ResponseError` when the bytes are not an image or are visibly truncated.
    """
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
