"""Where a C2PA manifest store (Content Credentials) sits inside an image file, and removing it.

The store is a JUMBF box the signer embedded: a ``caBX`` chunk in PNG, APP11 segments in JPEG,
a ``C2PA`` chunk in WebP (RIFF), a ``C2PA_GIF`` application extension in GIF and a
``<c2pa:manifest>`` element in SVG. Finding it needs only the container's structure (chunk and
segment headers), not c2pa-python, so every copy can decide cheaply whether there is a
manifest to keep, and views skip files that have none without loading the library.

The manifest's hard binding (``c2pa.hash.data``) hashes every byte outside the store, so any
byte added anywhere else breaks it (checked in ``tests/core/test_content_credentials.py``):
a copy either keeps the file byte for byte or drops the store.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO

from cometnb._core.images import sniff_format

__all__ = ["container", "file_has_store", "has_store", "store_spans", "strip_store"]

_GIF_MARK = b"\x21\xff\x0bC2PA_GIF"
_SVG_MANIFEST = re.compile(rb"<c2pa:manifest\b.*?</c2pa:manifest\s*>", re.S)
_MAX_SEGMENTS = 4096  # a walk of a damaged JPEG ends even if no SOS marker comes


def has_store(stream: BinaryIO) -> bool:
    """True when the image in ``stream`` (a file opened for reading, or ``BytesIO``) embeds a
    C2PA manifest store. Reads only headers for PNG, JPEG and WebP."""
    stream.seek(0)
    kind = container(stream.read(1024))
    if kind == "png":
        return any(k == b"caBX" for k, _at, _n in _png_chunks(stream))
    if kind == "jpeg":
        return any(_is_c2pa_app11(stream, at, n) for at, n in _jpeg_app11(stream))
    if kind == "webp":
        return any(k == b"C2PA" for k, _at, _n in _riff_chunks(stream))
    if kind in ("gif", "svg"):
        stream.seek(0)
        return bool(store_spans(stream.read()))
    return False


def file_has_store(path: Path) -> bool:
    """:func:`has_store` for a file; ``False`` when it cannot be read."""
    try:
        with path.open("rb") as stream:
            return has_store(stream)
    except OSError:
        return False


def store_spans(data: bytes) -> list[tuple[int, int]]:
    """``(offset, length)`` of every part of the manifest store in ``data``; ``[]`` when none."""
    from io import BytesIO

    stream = BytesIO(data)
    kind = container(data[:1024])
    if kind == "png":
        return [(at, n) for k, at, n in _png_chunks(stream) if k == b"caBX"]
    if kind == "jpeg":
        return _jpeg_store(stream)
    if kind == "webp":
        return [(at, n) for k, at, n in _riff_chunks(stream) if k == b"C2PA"]
    if kind == "gif":
        return _gif_store(data)
    if kind == "svg":
        return [(m.start(), m.end() - m.start()) for m in _SVG_MANIFEST.finditer(data)]
    return []


def strip_store(data: bytes) -> bytes:
    """``data`` without its manifest store (unchanged when it has none)."""
    spans = store_spans(data)
    if not spans:
        return data
    out, last = bytearray(), 0
    for at, n in spans:
        out += data[last:at]
        last = at + n
    out += data[last:]
    if out[:4] == b"RIFF":
        out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def container(head: bytes) -> str | None:
    """``png``, ``jpeg``, ``webp``, ``gif`` (``sniff_format``) or ``svg`` from a file's first
    kilobyte; ``None`` for anything else."""
    found = sniff_format(head)
    if found is not None:
        return found
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts = text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg"))
    return "svg" if starts and b"<svg" in text else None


# --- container walks: (kind, offset of the whole chunk, length of the whole chunk) -------------


def _png_chunks(stream: BinaryIO) -> list[tuple[bytes, int, int]]:
    chunks: list[tuple[bytes, int, int]] = []
    at = 8
    while True:
        stream.seek(at)
        header = stream.read(8)
        if len(header) < 8:
            return chunks
        size, kind = struct.unpack(">I", header[:4])[0], header[4:]
        chunks.append((kind, at, 12 + size))
        if kind == b"IEND":
            return chunks
        at += 12 + size


def _riff_chunks(stream: BinaryIO) -> list[tuple[bytes, int, int]]:
    chunks: list[tuple[bytes, int, int]] = []
    at = 12
    while True:
        stream.seek(at)
        header = stream.read(8)
        if len(header) < 8:
            return chunks
        size = struct.unpack("<I", header[4:])[0]
        whole = 8 + size + (size % 2)
        chunks.append((header[:4], at, whole))
        at += whole


def _jpeg_segments(stream: BinaryIO) -> list[tuple[int, int, int]]:
    """``(marker, offset, whole length)`` of the segments before the image data (SOS)."""
    segments: list[tuple[int, int, int]] = []
    at = 2
    for _ in range(_MAX_SEGMENTS):
        stream.seek(at)
        header = stream.read(4)
        if len(header) < 4 or header[0] != 0xFF:
            return segments
        marker = header[1]
        if marker == 0xDA or marker == 0xD9:  # start of scan / end of image
            return segments
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            at += 2
            continue
        whole = 2 + struct.unpack(">H", header[2:])[0]
        segments.append((marker, at, whole))
        at += whole
    return segments


def _jpeg_app11(stream: BinaryIO) -> list[tuple[int, int]]:
    return [(at, n) for marker, at, n in _jpeg_segments(stream) if marker == 0xEB]


def _is_c2pa_app11(stream: BinaryIO, at: int, n: int) -> bool:
    """An APP11 JUMBF segment (``JP``) whose superbox is labelled ``c2pa``."""
    stream.seek(at + 4)
    payload = stream.read(min(n - 4, 64))
    return payload[:2] == b"JP" and b"jumdc2pa" in payload


def _jpeg_store(stream: BinaryIO) -> list[tuple[int, int]]:
    """Every APP11 segment of the C2PA JUMBF box: the first one names ``c2pa``, continuations
    share its box instance number (payload bytes 2-3)."""
    app11 = _jpeg_app11(stream)
    instances = set()
    for at, n in app11:
        if _is_c2pa_app11(stream, at, n):
            stream.seek(at + 6)
            instances.add(stream.read(2))
    spans = []
    for at, n in app11:
        stream.seek(at + 4)
        payload = stream.read(4)
        if payload[:2] == b"JP" and payload[2:4] in instances:
            spans.append((at, n))
    return spans


def _gif_store(data: bytes) -> list[tuple[int, int]]:
    """The ``C2PA_GIF`` application extension: its header, then sub-blocks up to the 0 end."""
    at = data.find(_GIF_MARK)
    if at < 0:
        return []
    end = at + len(_GIF_MARK) + 3  # the 3-byte authentication code
    while end < len(data) and data[end] != 0:
        end += 1 + data[end]
    return [(at, min(end + 1, len(data)) - at)]
