"""Provenance inside an image file: prompt, model, settings, record id and cometnb version.

Copies that leave the history (``GeneratedImage.save``, zip exports, download links) carry
where they came from in the file's own metadata, the way image tools keep their
"parameters": PNG text chunks (``iTXt``), an XMP packet for JPEG (APP1) and WebP (``XMP ``
chunk). The metadata is spliced into the byte stream; the pixels are never re-encoded, so a
JPEG loses nothing, and the history's originals are never touched (callers pass copies).

Reading it back needs nothing of ours::

    >>> from PIL import Image  # doctest: +SKIP
    >>> Image.open("cat.png").text["parameters"]  # doctest: +SKIP
    'a cat\\nModel: gpt-image-2, size: 1024x1024, Record: 20260101-…, cometnb 0.3.0'
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from cometnb._core.errors import ValidationError, redact

__all__ = ["provenance", "save_copy", "stamp", "stamp_jpeg", "stamp_png", "stamp_webp"]

XMP_NS = "https://github.com/cometnb/cometnb/ns/1.0/"
_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Fields of a request body that describe the image (the prompt and model are listed apart).
_SKIP = frozenset({"prompt", "model", "stream", "user"})


def provenance(
    *,
    prompt: str,
    model: str,
    params: Mapping[str, Any] | None = None,
    record_id: str | None = None,
    version: str | None = None,
) -> dict[str, str]:
    """The text fields written into a file, all plain strings (redacted, never the key).

    Example::

        >>> provenance(prompt="a cat", model="dall-e-3", params={"size": "1024x1024"},
        ...            record_id="r1", version="0.3")["parameters"]
        'a cat\\nModel: dall-e-3, size: 1024x1024, Record: r1, cometnb 0.3'
    """
    if version is None:
        from cometnb._version import __version__ as version
    settings = {k: v for k, v in (params or {}).items() if k not in _SKIP and v is not None}
    parts = [f"Model: {model}", *(f"{k}: {_text(v)}" for k, v in settings.items())]
    if record_id:
        parts.append(f"Record: {record_id}")
    parts.append(f"cometnb {version}")
    blob = {"prompt": prompt, "model": model, "settings": settings, "record_id": record_id}
    fields = {
        "parameters": f"{prompt}\n{', '.join(parts)}",
        "Description": prompt,
        "Software": f"cometnb {version}",
        "cometnb": json.dumps({**blob, "version": version}, ensure_ascii=False, sort_keys=True),
    }
    return {k: redact(v) for k, v in fields.items()}


def save_copy(
    data: bytes,
    fmt: str,
    path: Path,
    *,
    name: str | None = None,
    source: Mapping[str, Any] | None = None,
    metadata: bool = True,
) -> Path:
    """What :meth:`GeneratedImage.save` does: ``data`` (a ``fmt`` image) written to ``path``
    (a folder keeps ``name``), stamped with ``source`` unless ``metadata`` is False."""
    target = path.expanduser()
    if target.is_dir():
        target = target / (name or f"image.{fmt or 'png'}")
    suffix = target.suffix.lower().lstrip(".").replace("jpg", "jpeg")
    fmt = (fmt or "").lower().replace("jpg", "jpeg")
    if suffix and fmt and suffix != fmt:
        raise ValidationError(
            f"cannot save a {fmt} image as {target.name}: use the .{fmt} suffix "
            "(cometnb does not convert images)",
            field="path",
        )
    if metadata and source:
        data = stamp(data, source_fields(source))
    target.write_bytes(data)
    return target


def source_fields(source: Mapping[str, Any]) -> dict[str, str]:
    """:func:`provenance` from a ``{prompt, model, params, record_id}`` mapping."""
    return provenance(
        prompt=str(source.get("prompt", "")),
        model=str(source.get("model", "")),
        params=source.get("params") or {},
        record_id=source.get("record_id"),
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def stamp(data: bytes, fields: Mapping[str, str]) -> bytes:
    """``data`` with ``fields`` added to its metadata (PNG, JPEG or WebP; others unchanged)."""
    if data.startswith(_PNG_SIGNATURE):
        return stamp_png(data, fields)
    if data.startswith(b"\xff\xd8"):
        return stamp_jpeg(data, fields)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return stamp_webp(data, fields)
    return data


# --- PNG: one iTXt chunk per field, right after IHDR --------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def stamp_png(data: bytes, fields: Mapping[str, str]) -> bytes:
    """Insert ``iTXt`` chunks (UTF-8, uncompressed) after the IHDR chunk."""
    ihdr_len = struct.unpack(">I", data[8:12])[0]
    end = 8 + 12 + ihdr_len  # signature + length/type/crc + body
    chunks = b"".join(
        # keyword \0 compression-flag compression-method language \0 translated \0 text
        _png_chunk(b"iTXt", key.encode("latin-1")[:79] + b"\x00\x00\x00\x00\x00" + value.encode())
        for key, value in fields.items()
    )
    return data[:end] + chunks + data[end:]


# --- XMP for JPEG and WebP --------------------------------------------------------------------


def xmp_packet(fields: Mapping[str, str]) -> bytes:
    """An XMP packet: ``dc:description`` holds the prompt, ``cometnb:*`` the rest."""
    own = "".join(
        f"<cometnb:{key}>{escape(value)}</cometnb:{key}>"
        for key, value in fields.items()
        if key not in ("Description", "Software")
    )
    description = escape(fields.get("Description", ""))
    software = escape(fields.get("Software", ""))
    xml = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:cometnb="{XMP_NS}">'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li>'
        f"</rdf:Alt></dc:description><xmp:CreatorTool>{software}</xmp:CreatorTool>{own}"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="r"?>'
    )
    return xml.encode("utf-8")


def stamp_jpeg(data: bytes, fields: Mapping[str, str]) -> bytes:
    """Insert an APP1 XMP segment after SOI (and after a leading APP0/JFIF segment)."""
    payload = _JPEG_XMP_HEADER + xmp_packet(fields)
    if len(payload) + 2 > 0xFFFF:  # one segment holds at most 64 KiB: keep the short fields
        payload = _JPEG_XMP_HEADER + xmp_packet({k: v[:4000] for k, v in fields.items()})
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    at = 2
    if data[2:4] == b"\xff\xe0":  # JFIF wants to stay first
        at = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:at] + segment + data[at:]


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    pad = b"\x00" if len(body) % 2 else b""
    return kind + struct.pack("<I", len(body)) + body + pad


def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        chunks.append((kind, data[at + 8 : at + 8 + size]))
        at += 8 + size + (size % 2)
    return chunks


def stamp_webp(data: bytes, fields: Mapping[str, str]) -> bytes:
    """Add an ``XMP `` chunk, turning a simple (VP8/VP8L) file into the extended (VP8X) form."""
    chunks = [c for c in _webp_chunks(data) if c[0] != b"XMP "]
    if chunks and chunks[0][0] == b"VP8X":
        header = bytearray(chunks.pop(0)[1])
        header[0] |= 0x04  # XMP flag
    else:
        header = bytearray(_vp8x_header(data))
    out = [(b"VP8X", bytes(header)), *chunks, (b"XMP ", xmp_packet(fields))]
    body = b"WEBP" + b"".join(_riff_chunk(kind, value) for kind, value in out)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _vp8x_header(data: bytes) -> bytes:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(data)) as im:
        width, height = int(im.size[0]), int(im.size[1])
        alpha = "A" in im.mode or "transparency" in im.info
    flags = 0x04 | (0x10 if alpha else 0)
    return (
        bytes([flags, 0, 0, 0])
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
