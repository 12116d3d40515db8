"""Content Credentials (C2PA manifests) read from stored images: who signed, what made it, and
whether the signature still binds the bytes.

OpenAI signs its API images (claim generator ``OpenAI-API``, digital source type
``trainedAlgorithmicMedia``); cometnb keeps the server's bytes unchanged, so the manifest of a
stored original can be checked. Reading uses c2pa-python (the Content Authenticity
Initiative's library, the optional extra ``cometnb[c2pa]``: its wheel is 16 MB). Without it a
file that carries a manifest still shows that it does, with a note on how to read it.

Reads happen when a view first asks (never while a request runs) and are cached by file
(path, size, modification time), so redrawing a long history re-parses nothing; files without a
manifest store are recognised from their chunk headers alone (:mod:`cometnb._core.c2pa_store`)
and never reach the library. Trust in the signer is not judged: ``state`` says whether the
signature and the hard binding hold; ``trusted`` whether the library also knew the signer.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from cometnb._core.c2pa_store import container, has_store

__all__ = [
    "INSTALL_HINT",
    "ContentCredentials",
    "clear_cache",
    "read_credentials",
    "source_type_label",
]

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
_MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
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
    mime = _MIME.get(container(stream.read(1024)) or "", "application/octet-stream")
    stream.seek(0)
    try:
        # One read at a time: the preview workers and a view may ask together, and the native
        # context is shared.
        with _read_lock, c2pa.Reader(mime, stream, None, _context()) as reader:
            report = json.loads(reader.json())
    except c2pa.C2paError as exc:  # a store the library cannot even parse: damaged
        return ContentCredentials(state="invalid", problems=(f"unreadable manifest: {exc}",))
    return credentials_from_report(report)


_context_made: Any = None
_read_lock = threading.Lock()


def _context() -> Any:
    """Settings for every read: nothing is fetched (no remote manifest, no OCSP)."""
    global _context_made
    if _context_made is None:
        import c2pa

        _context_made = c2pa.Context.from_dict(
            {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
        )
    return _context_made


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
