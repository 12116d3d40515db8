"""Exports of history records: a gallery page, a zip of originals, JSON lines, a DataFrame.

Images leave through :func:`cometnb._core.provenance.labelled_copy` (AI-generated label,
provenance, C2PA kept valid), the one copy path every exporter uses.

Each file is written next to its destination under a temporary name and renamed into place,
so a failed export never leaves a half-written file where the user asked for one. Zip members
are only ``records.jsonl`` and ``images/<plain file name>`` (with its ``.xmp`` sidecar): names
taken from the index are reduced to their last component, so nothing in a record can steer a
write elsewhere.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cometnb._core.dataframes import frame_by_id
from cometnb._core.errors import CometError, ValidationError
from cometnb._core.provenance import labelled_copy
from cometnb._storage import files as _files

if TYPE_CHECKING:
    import pandas as pd

    from cometnb._storage.records import Record

__all__ = ["FORMATS", "export", "jsonl_text", "record_values", "to_dataframe"]

FORMATS = (".html", ".zip", ".jsonl")


def export(records: Sequence[Record], path: Path, *, title: str = "cometnb gallery") -> Path:
    """Write ``records`` to ``path`` in the format its suffix names; returns the path written."""
    writers: dict[str, Callable[[Sequence[Record], Path, str], None]] = {
        ".html": _write_html,
        ".zip": _write_zip,
        ".jsonl": _write_jsonl,
    }
    if path.is_dir():
        raise ValidationError(f"cannot export to {path}: it is a folder", field="path")
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise ValidationError(
            f"cannot export to {path.name!r}: the file name must end in "
            f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]}",
            field="path",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        writer(records, tmp, title)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_html(records: Sequence[Record], tmp: Path, title: str) -> None:
    from cometnb._core.session import render

    tmp.write_text(render("gallery", records, title), encoding="utf-8")


def _write_jsonl(records: Sequence[Record], tmp: Path, title: str) -> None:
    tmp.write_text(jsonl_text(records), encoding="utf-8")


def jsonl_text(records: Iterable[Record]) -> str:
    """One JSON object per line, oldest first (``Record.to_dict()``)."""
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records)


def _member(file: str, folder: str = "images") -> str:
    """A safe zip member name for a stored file: ``images/<last path component>`` (edit
    inputs: ``sources/…``, the path ``records.jsonl`` names them by)."""
    name = PurePosixPath(file.replace("\\", "/")).name
    if name in ("", ".", ".."):
        raise CometError(f"refusing to export an image with the file name {file!r}")
    return f"{folder}/{name}"


def _write_zip(records: Sequence[Record], tmp: Path, title: str) -> None:
    missing: list[str] = []
    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr("records.jsonl", jsonl_text(records))
        written: set[str] = set()
        for rec in records:
            for file, img in zip(rec.files, rec.images, strict=True):
                member = _member(file)
                if member in written:
                    continue
                if img.path is None or not _inside(img.path, rec.folder):
                    # Records refuse such paths (no path at all); checked here once more.
                    missing.append(f"{file} (outside the history folder: not exported)")
                    continue
                if not img.path.is_file():
                    missing.append(file)
                    continue
                # Stored, not deflated: PNG/JPEG/WebP are compressed already. The copy is
                # labelled AI-generated and carries its provenance; a server's C2PA manifest
                # stays valid (labels in a sidecar member). The original is untouched.
                copy = labelled_copy(img.path.read_bytes(), img.source)
                zf.writestr(member, copy.data, compress_type=zipfile.ZIP_STORED)
                if copy.sidecar is not None:
                    zf.writestr(str(PurePosixPath(member).with_suffix(".xmp")), copy.sidecar)
                written.add(member)
            _write_sources(zf, rec, written, missing)
        if missing:
            zf.writestr("MISSING.txt", "".join(f"{m}\n" for m in missing))


def _write_sources(zf: zipfile.ZipFile, rec: Record, written: set[str], missing: list[str]) -> None:
    """An edit's input files, once each (content-addressed: the same name is the same bytes)."""
    for src in rec.sources:
        path = src.path
        if path is None:
            continue  # listed without a file (it could not be stored): nothing to copy
        member = _member(path.name, "sources")
        if member in written:
            continue
        if not path.is_file() or not _inside(path, rec.folder):
            missing.append(f"sources/{path.name}")
            continue
        zf.write(path, member, compress_type=zipfile.ZIP_STORED)
        written.add(member)


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies inside ``folder`` (``files.inside``)."""
    return _files.inside(folder, str(path)) is not None


_COLUMNS = (
    "id",
    "created_at",
    "prompt",
    "model",
    "status",
    "size",
    "quality",
    "n",
    "images",
    "elapsed_s",
    "total_tokens",
    "cost_usd",
    "cost_estimated",
    "error",
    "http_status",
    "tags",
    "origin",
    "kind",
    "parent",
    "synthetic",
    "revised_prompt",
    "files",
    "params",
)


def record_values(rec: Record) -> dict[str, Any]:
    """The plain values every flat view of a record shares (the DataFrame row here, the
    sidebar's JSON in ``_server.payloads``), named and meant the same in each."""
    cost = rec.cost
    return {
        "id": rec.id,
        "prompt": rec.prompt,
        "model": rec.model,
        "params": rec.params,
        "status": rec.status,
        "error": rec.error,
        "http_status": rec.http_status,
        "elapsed_s": rec.elapsed_s,
        "tags": list(rec.tags),
        "origin": rec.origin,
        "cost_usd": cost.usd,  # None (NaN in pandas) when unknown, never 0
        "cost_estimated": cost.estimated,
        "kind": rec.kind,  # "edit" or "generate"
        "parent": rec.parent,
        "synthetic": rec.synthetic,
    }


def _row(rec: Record) -> dict[str, Any]:
    params = rec.params
    revised = rec.revised_prompts
    return {
        **record_values(rec),
        "created_at": rec.created_at,
        "size": rec.meta.get("size") or params.get("size"),
        "quality": rec.meta.get("quality") or params.get("quality"),
        "n": params.get("n", 1),
        "images": len(rec.files),
        "total_tokens": (rec.usage or {}).get("total_tokens"),
        "revised_prompt": revised[0] if revised else None,
        "files": [str(img.path) for img in rec.images],
    }


def to_dataframe(records: Sequence[Record]) -> pd.DataFrame:
    """A pandas DataFrame, one row per record, indexed by record id."""
    return frame_by_id([_row(r) for r in records], _COLUMNS)
