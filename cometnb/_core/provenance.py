"""Provenance of stored images: the C2PA manifest store (Content Credentials) inside a file,
reading and verifying it, and what cometnb records about where an image came from.

Finding the store (a JUMBF box: ``caBX`` in PNG, APP11 in JPEG, ``C2PA`` in WebP, ...) needs
only the container's structure; reading it uses c2pa-python (the optional extra
``cometnb[c2pa]``). The manifest's hard binding hashes every byte outside the store, so a copy
either keeps the file byte for byte or drops the store.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal
from xml.sax.saxutils import escape

from cometnb._core.errors import ValidationError, redact
from cometnb._core.images import mime_type, sniff_format

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "INSTALL_HINT",
    "ContentCredentials",
    "LabelledCopy",
    "clear_cache",
    "file_has_store",
    "has_store",
    "labelled_copy",
    "provenance",
    "read_credentials",
    "save_copy",
    "source_type_label",
    "stamp",
    "stamp_gif",
    "stamp_jpeg",
    "stamp_png",
    "stamp_svg",
    "stamp_webp",
    "store_spans",
    "strip_store",
    "xmp_packet",
]


# --- the C2PA manifest store ------------------------------------------------------------------

_GIF_MARK = b"\x21\xff\x0bC2PA_GIF"


_SVG_MANIFEST = re.compile(rb"<c2pa:manifest\b.*?</c2pa:manifest\s*>", re.S)


_MAX_SEGMENTS = 4096  # a walk of a damaged JPEG ends even if no SOS marker comes


def has_store(stream: BinaryIO) -> bool:
    """True when the image in ``stream`` (a file opened for reading, or ``BytesIO``) embeds a
    C2PA manifest store. Reads only headers for PNG, JPEG and WebP."""
    stream.seek(0)
    kind = sniff_format(stream.read(1024))
    if kind in _CHUNKED:
        return bool(_chunk_store(stream, kind))
    if kind == "jpeg":
        return any(_is_c2pa_app11(stream, at, n) for at, n in _jpeg_app11(stream))
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
    kind = sniff_format(data[:1024])
    if kind in _CHUNKED:
        return _chunk_store(stream, kind)
    if kind == "jpeg":
        return _jpeg_store(stream)
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


def _png_header(header: bytes) -> tuple[bytes, int]:
    """A PNG chunk header (length, big-endian, then type): the type and the whole chunk's
    length (the CRC after the data included)."""
    return header[4:], 12 + struct.unpack(">I", header[:4])[0]


def _riff_header(header: bytes) -> tuple[bytes, int]:
    """A RIFF (WebP) chunk header (FourCC, then length, little-endian): the type and the whole
    chunk's length (data padded to an even length)."""
    size = struct.unpack("<I", header[4:])[0]
    return header[:4], 8 + size + (size % 2)


# Formats made of chunks with 8-byte headers: where the first chunk starts, how its header
# reads, and the chunk type that holds the manifest store.
_CHUNKED: dict[str, tuple[int, Callable[[bytes], tuple[bytes, int]], bytes]] = {
    "png": (8, _png_header, b"caBX"),
    "webp": (12, _riff_header, b"C2PA"),
}


def _chunk_store(stream: BinaryIO, kind: str) -> list[tuple[int, int]]:
    """``(offset, whole length)`` of the manifest store's chunks in a PNG or WebP file."""
    at, read_header, store = _CHUNKED[kind]
    spans: list[tuple[int, int]] = []
    while True:
        stream.seek(at)
        header = stream.read(8)
        if len(header) < 8:
            return spans
        chunk, whole = read_header(header)
        if chunk == store:
            spans.append((at, whole))
        if chunk == b"IEND":  # PNG's last chunk: what follows is not the image's
            return spans
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


# --- reading Content Credentials --------------------------------------------------------------

State = Literal["valid", "invalid", "unverified"]


INSTALL_HINT = "install cometnb[c2pa] to read Content Credentials"


_SOURCE_LABELS = {
    "trainedAlgorithmicMedia": "AI-generated",
    "compositeWithTrainedAlgorithmicMedia": "AI-edited composite",
    "algorithmicallyEnhanced": "algorithmically enhanced",
    "algorithmicMedia": "algorithmic media",
    "digitalCapture": "camera capture",
    "composite": "composite",
}


# Failures that say nothing about the bytes: the test or a private CA is simply not on a trust
# list, and revocation is not checked offline.
_NOT_BINDING = frozenset({"signingCredential.untrusted", "signingCredential.ocsp.skipped"})


@dataclass(frozen=True)
class ContentCredentials:
    """What an image's C2PA manifest says (``Record.c2pa``, ``GeneratedImage.c2pa``).

    ``state`` is ``"valid"`` (the signature and the hard binding to these bytes hold),
    ``"invalid"`` (the file was changed after signing, or the manifest is damaged; ``problems``
    lists why) or ``"unverified"`` (a manifest is there but c2pa-python is not installed).

    Example::

        >>> cc = history()[-1].c2pa  # doctest: +SKIP
        >>> cc.summary  # doctest: +SKIP
        'AI-generated · OpenAI-API · signed by OpenAI · valid'
    """

    state: State
    issuer: str | None = None
    claim_generator: str | None = None
    digital_source_type: str | None = None
    trusted: bool = False
    problems: tuple[str, ...] = ()
    signed_at: str | None = None

    @property
    def valid(self) -> bool:
        return self.state == "valid"

    @property
    def summary(self) -> str:
        """One short line: what made it, by what, signed by whom, and the state."""
        if self.state == "unverified":
            return f"a C2PA manifest is embedded; {INSTALL_HINT}"
        parts = [
            source_type_label(self.digital_source_type),
            self.claim_generator,
            f"signed by {self.issuer}" if self.issuer else None,
            self.state if self.valid else "invalid: changed after signing or damaged",
        ]
        return " · ".join(p for p in parts if p)


def source_type_label(uri: str | None) -> str | None:
    """``"AI-generated"`` for IPTC's ``trainedAlgorithmicMedia`` (and the other common
    codes); the code's own name for the rest."""
    if not uri:
        return None
    code = uri.rsplit("/", 1)[-1]
    return _SOURCE_LABELS.get(code, code)


_cache: OrderedDict[tuple[Any, ...], ContentCredentials | None] = OrderedDict()


_cache_lock = threading.Lock()


_CACHE_SIZE = 4096


def read_credentials(source: Path | bytes) -> ContentCredentials | None:
    """The Content Credentials of an image file or of image bytes; ``None`` when it carries
    none (or the file is gone). Cached per file (path, size, mtime) and per content."""
    try:
        key = _key(source)
    except OSError:
        return None
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        found = _read(source)
    except OSError:
        return None
    with _cache_lock:
        _cache[key] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return found


def clear_cache() -> None:
    """Forget every cached read (tests; a file replaced within one mtime tick)."""
    with _cache_lock:
        _cache.clear()


def _key(source: Path | bytes) -> tuple[Any, ...]:
    if isinstance(source, bytes):
        return ("bytes", hashlib.blake2b(source, digest_size=16).digest())
    st = source.stat()
    return ("file", str(source), st.st_size, st.st_mtime_ns)


def _read(source: Path | bytes) -> ContentCredentials | None:
    if isinstance(source, bytes):
        return _parse(io.BytesIO(source))
    with source.open("rb") as stream:
        return _parse(stream)


def _parse(stream: BinaryIO) -> ContentCredentials | None:
    if not has_store(stream):
        return None
    try:
        import c2pa
    except ImportError:
        return ContentCredentials(state="unverified")
    stream.seek(0)
    mime = mime_type(sniff_format(stream.read(1024)))
    stream.seek(0)
    try:
        # One read at a time: the preview workers and a view may ask together, and the native
        # context is shared.
        with _read_lock, c2pa.Reader(mime, stream, None, _context()) as reader:
            report = json.loads(reader.json())
    except c2pa.C2paError as exc:  # a store the library cannot even parse: damaged
        return ContentCredentials(state="invalid", problems=(f"unreadable manifest: {exc}",))
    return credentials_from_report(report)


_read_lock = threading.Lock()


@functools.cache  # one per process: a fixed reading policy, no state
def _context() -> Any:
    """Settings for every read: nothing is fetched (no remote manifest, no OCSP)."""
    import c2pa

    return c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})


def credentials_from_report(report: Mapping[str, Any]) -> ContentCredentials:
    """:class:`ContentCredentials` from c2pa's JSON report of a manifest store."""
    manifests = report.get("manifests") or {}
    active = manifests.get(report.get("active_manifest")) or {}
    signature = active.get("signature_info") or {}
    failures = _failures(report)
    problems = tuple(f for f in failures if f.split(":", 1)[0] not in _NOT_BINDING)
    state_text = str(report.get("validation_state") or "").lower()
    invalid = state_text == "invalid" or (not state_text and bool(problems)) or not active
    return ContentCredentials(
        state="invalid" if invalid else "valid",
        issuer=signature.get("issuer") or signature.get("common_name"),
        claim_generator=_generator(active),
        digital_source_type=_source_type(active),
        trusted=state_text == "trusted",
        problems=problems or (("no active manifest",) if not active else ()),
        signed_at=signature.get("time"),
    )


def _failures(report: Mapping[str, Any]) -> list[str]:
    results = (report.get("validation_results") or {}).get("activeManifest") or {}
    listed = results.get("failure") or report.get("validation_status") or []
    seen: dict[str, None] = {}
    for item in listed:
        code = str(item.get("code", "unknown"))
        explanation = item.get("explanation")
        seen[f"{code}: {explanation}" if explanation else code] = None
    return list(seen)


def _generator(active: Mapping[str, Any]) -> str | None:
    """``claim_generator`` (v1 claims) or the first ``claim_generator_info`` (v2)."""
    if active.get("claim_generator"):
        return str(active["claim_generator"])
    for info in active.get("claim_generator_info") or []:
        name = info.get("name")
        if name:
            return f"{name} {info['version']}" if info.get("version") else str(name)
    return None


def _source_type(active: Mapping[str, Any]) -> str | None:
    """The ``digitalSourceType`` of the actions (``c2pa.created`` first)."""
    found: list[str] = []
    for assertion in active.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            kind = action.get("digitalSourceType")
            if kind:
                if action.get("action") == "c2pa.created":
                    return str(kind)
                found.append(str(kind))
    return found[0] if found else None


# --- labelled copies --------------------------------------------------------------------------

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
    stamper = stampers.get(sniff_format(data[:1024]) or "")
    if stamper is None:
        return data
    try:
        return stamper(data, fields)
    except (struct.error, ValueError, IndexError, OSError):
        # A damaged file (cut short, headers broken) is copied as it is: splicing into a
        # structure that is not there could only make it worse.
        return data


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
