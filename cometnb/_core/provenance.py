"""Provenance inside an image file: "AI-generated" in the standard field, plus prompt, model,
settings, record id and cometnb version.

Copies that leave the history (``GeneratedImage.save``, zip exports, the gallery's embedded
images, any download) all go through :func:`labelled_copy`. It writes IPTC's
``DigitalSourceType`` = ``trainedAlgorithmicMedia`` (what stock sites and publishers check,
and what the EU AI Act's marking duty asks for) and cometnb's own fields, the way image tools
keep their "parameters": an XMP packet (PNG ``iTXt`` ``XML:com.adobe.xmp``, JPEG APP1, WebP
``XMP `` chunk, GIF application extension, SVG ``<metadata>``) and, in PNG, plain text chunks.
The metadata is spliced into the byte stream; the pixels are never re-encoded, and the
history's originals are never touched (callers pass copies).

A file that carries the server's Content Credentials (C2PA) cannot take a single added byte
without breaking the manifest's hard binding (:mod:`cometnb._core.c2pa_store`), so a copy
chooses, and says which in its metadata (``cometnb:content_credentials``):

- ``kept`` (``keep_c2pa=True``, the default): the file is the server's bytes, its manifest
  still validates, and the labels go in an XMP sidecar beside it (``name.xmp``);
- ``removed`` (``keep_c2pa=False``, and downscaled previews): the manifest is dropped and the
  labels are written into the file;
- ``none``: the original carried no manifest; the labels are in the file.

Reading it back needs nothing of ours::

    >>> from PIL import Image  # doctest: +SKIP
    >>> Image.open("cat.png").text["parameters"]  # doctest: +SKIP
    'a cat\\nModel: gpt-image-2, size: 1024x1024, Record: 20260101-…, cometnb 0.3.0'
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from cometnb._core.c2pa_store import container, store_spans, strip_store
from cometnb._core.errors import ValidationError, redact

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "LabelledCopy",
    "labelled_copy",
    "provenance",
    "save_copy",
    "stamp",
    "stamp_gif",
    "stamp_jpeg",
    "stamp_png",
    "stamp_svg",
    "stamp_webp",
    "xmp_packet",
]

XMP_NS = "https://github.com/cometnb/cometnb/ns/1.0/"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
C2paChoice = Literal["kept", "removed", "none"]
_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
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
    version = version or _software().removeprefix("cometnb ")
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
    keep_c2pa: bool = True,
) -> Path:
    """What :meth:`GeneratedImage.save` does: ``data`` (a ``fmt`` image) written to ``path``
    (a folder keeps ``name``) as :func:`labelled_copy` makes it; a sidecar, when there is one,
    goes beside it as ``<stem>.xmp``."""
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
    copy = labelled_copy(data, source, keep_c2pa=keep_c2pa, metadata=metadata)
    target.write_bytes(copy.data)
    if copy.sidecar is not None:
        target.with_suffix(".xmp").write_bytes(copy.sidecar)
    return target


@dataclass(frozen=True)
class LabelledCopy:
    """A copy ready to leave the history: ``data`` (the file), ``sidecar`` (an XMP packet to
    write beside it as ``<stem>.xmp``, or ``None``) and ``c2pa``: ``kept``, ``removed`` or
    ``none`` (see the module's docstring)."""

    data: bytes
    sidecar: bytes | None
    c2pa: C2paChoice


def labelled_copy(
    data: bytes,
    source: Mapping[str, Any] | None,
    *,
    keep_c2pa: bool = True,
    metadata: bool = True,
    original_has_c2pa: bool | None = None,
) -> LabelledCopy:
    """The one way a copy leaves the history: ``data`` labelled AI-generated, with ``source``
    (``{prompt, model, params, record_id}``) in its metadata, and the server's C2PA manifest
    either kept valid (labels in a sidecar) or removed (``keep_c2pa=False``).

    ``metadata=False`` writes no labels (the server's bytes; without their manifest when
    ``keep_c2pa`` is False). ``original_has_c2pa`` is for derived bytes (a preview): whether
    the original they were made from had a manifest, so the copy says it was removed.

    Example::

        >>> source = {"prompt": "a cat", "model": "gpt-image-2"}
        >>> copy = labelled_copy(png_bytes, source)  # doctest: +SKIP
        >>> copy.c2pa, copy.sidecar is None  # doctest: +SKIP
        ('none', True)
    """
    signed = bool(store_spans(data))
    had = signed if original_has_c2pa is None else (original_has_c2pa or signed)
    choice: C2paChoice = "none" if not had else "kept" if signed and keep_c2pa else "removed"
    if signed and not keep_c2pa:
        data = strip_store(data)
    if not metadata:
        return LabelledCopy(data, None, choice)
    # An image with no known request (made outside cometnb's client) still gets the label.
    known = source_fields(source) if source else {"Software": _software()}
    fields = {**known, "content_credentials": choice}
    if choice == "kept":  # not one byte may be added: the labels travel beside the file
        return LabelledCopy(data, xmp_packet(fields), choice)
    return LabelledCopy(stamp(data, fields), None, choice)


def source_fields(source: Mapping[str, Any]) -> dict[str, str]:
    """:func:`provenance` from a ``{prompt, model, params, record_id}`` mapping."""
    return provenance(
        prompt=str(source.get("prompt", "")),
        model=str(source.get("model", "")),
        params=source.get("params") or {},
        record_id=source.get("record_id"),
    )


def _software() -> str:
    from cometnb._version import __version__

    return f"cometnb {__version__}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def stamp(data: bytes, fields: Mapping[str, str]) -> bytes:
    """``data`` with ``fields`` added to its metadata (PNG, JPEG, WebP, GIF or SVG; anything
    else unchanged). Breaks a C2PA manifest's binding: :func:`labelled_copy` decides."""
    stampers = {
        "png": stamp_png,
        "jpeg": stamp_jpeg,
        "webp": stamp_webp,
        "gif": stamp_gif,
        "svg": stamp_svg,
    }
    stamper = stampers.get(container(data[:1024]) or "")
    if stamper is None:
        return data
    try:
        return stamper(data, fields)
    except (struct.error, ValueError, IndexError, OSError):
        # A damaged file (cut short, headers broken) is copied as it is: splicing into a
        # structure that is not there could only make it worse.
        return data


# --- PNG: one iTXt chunk per field, right after IHDR --------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def stamp_png(data: bytes, fields: Mapping[str, str]) -> bytes:
    """Insert ``iTXt`` chunks (UTF-8, uncompressed) after the IHDR chunk: one per field, and
    the XMP packet under the keyword ``XML:com.adobe.xmp`` (where XMP readers look)."""
    ihdr_len = struct.unpack(">I", data[8:12])[0]
    end = 8 + 12 + ihdr_len  # signature + length/type/crc + body
    texts = {**fields, "XML:com.adobe.xmp": xmp_packet(fields).decode("utf-8")}
    chunks = b"".join(
        # keyword \0 compression-flag compression-method language \0 translated \0 text
        _png_chunk(b"iTXt", key.encode("latin-1")[:79] + b"\x00\x00\x00\x00\x00" + value.encode())
        for key, value in texts.items()
    )
    return data[:end] + chunks + data[end:]


# --- XMP for JPEG and WebP --------------------------------------------------------------------


def xmp_packet(fields: Mapping[str, str]) -> bytes:
    """An XMP packet: IPTC's ``DigitalSourceType`` (AI-generated), ``dc:description`` the
    prompt, ``xmp:CreatorTool`` the cometnb version, ``cometnb:*`` the rest."""
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
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:cometnb="{XMP_NS}" '
        f'xmlns:Iptc4xmpExt="{IPTC_EXT_NS}">'
        f"<Iptc4xmpExt:DigitalSourceType>{DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>"
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


# --- GIF: an XMP application extension; SVG: a <metadata> element ----------------------------

# The XMP spec's GIF form: the packet's bytes stand as sub-blocks, and a 258-byte "magic
# trailer" (0x01, 0xFF down to 0x00, then the 0 terminator) makes any reader skip them.
_GIF_XMP_TRAILER = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"


def stamp_gif(data: bytes, fields: Mapping[str, str]) -> bytes:
    """Insert an ``XMP DataXMP`` application extension after the global colour table."""
    flags = data[10] if len(data) > 10 else 0
    at = 13 + (3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0)
    extension = b"\x21\xff\x0bXMP DataXMP" + xmp_packet(fields) + _GIF_XMP_TRAILER
    return data[:at] + extension + data[at:]


_SVG_ROOT = re.compile(rb"<!--.*?-->|<svg\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.S)


def stamp_svg(data: bytes, fields: Mapping[str, str]) -> bytes:
    """Insert a ``<metadata>`` element (the XMP packet, every value escaped) as the root
    element's first child; a self-closing or unrecognised root is left unchanged."""
    for match in _SVG_ROOT.finditer(data):
        tag = match.group()
        if tag.startswith(b"<!--"):
            continue
        if tag.endswith(b"/>"):
            return data
        packet = xmp_packet(fields).split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0]
        element = b'<metadata id="cometnb-provenance">' + packet + b"</metadata>"
        return data[: match.end()] + element + data[match.end() :]
    return data
