"""A history that can check and rebuild itself: record documents, index probes and repair.

The SQLite index is the fast way in, but not the only copy: before its row commits, every
record's document (the row's columns and its JSON ``doc``) is written to
``records/<id>.json`` beside the images. So a damaged index can be rebuilt from those files,
and a process killed between writing images and committing their row leaves files that
:func:`repair` finds and adopts, instead of billed images no :class:`History` lists.

* :func:`write_document` — the sidecar file, written before the index commit.
* :func:`probe_index` — before sending: can the index take a new row? (a read-only, corrupt,
  truncated or newer-version index gives a clear :class:`CometError`, and nothing is sent).
* :func:`repair` — rebuild a damaged index from the documents, restore rows whose documents
  are on disk, adopt image files no record names, drop abandoned temporaries; returns a
  :class:`RepairReport` saying what it did (``dry_run=True`` only says what it would do).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cometnb._core.errors import CometError
from cometnb._storage import files as _files
from cometnb._storage.index import (
    DB_NAME,
    SCHEMA_VERSION,
    Index,
    IndexRow,
    damaged_index_error,
)
from cometnb._storage.records import IMAGES, PREVIEWS, document_json
from cometnb._version import __version__

__all__ = [
    "RECORDS",
    "RepairReport",
    "probe_index",
    "read_document",
    "repair",
    "write_document",
]

RECORDS = "records"
_ID = re.compile(r"^(\d{8}-\d{6}-\d{4}-[0-9a-f]{6})-(\d+)-")
_NOT_SENT = "; nothing was sent"
_TEMP_GRACE_S = 60.0  # a younger temporary may still be being written by another process


# --- documents -------------------------------------------------------------------------------


def document(row: IndexRow) -> dict[str, Any]:
    """The sidecar form of an index row."""
    rid, _seq, created, prompt, model, status, tags, doc = row
    return {
        "id": rid,
        "created_at": created,
        "prompt": prompt,
        "model": model,
        "status": status,
        "tags": json.loads(tags),
        "doc": json.loads(doc),
        "written_by": __version__,
    }


def write_document(root: Path, fields: Mapping[str, Any]) -> None:
    """Write ``records/<id>.json`` atomically (before the row commits).

    Without fsync: the row's commit right after is the durable copy of the record, and this
    one only matters once the index is damaged, so a power cut would have to lose both. Per
    record the history then syncs the image (and its folder) and commits once (issue 17).
    """
    text = document_json(fields)
    path = root / RECORDS / f"{fields['id']}.json"
    _files.atomic_write(path, text.encode("utf-8"), durable=False)


def read_document(path: Path) -> dict[str, Any] | None:
    """A sidecar's fields, or ``None`` when it is unreadable or not one of ours."""
    try:
        fields = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    required = ("id", "created_at", "prompt", "model", "status", "tags", "doc")
    if not isinstance(fields, dict) or any(k not in fields for k in required):
        return None
    return fields


# --- probing ---------------------------------------------------------------------------------


def probe_index(root: Path, *, integrity: bool = True) -> None:
    """Raise :class:`CometError` unless the index at ``root`` could take a new row now.

    A missing index is fine (it is created on the first write). The probe opens the file
    read-write, checks its schema version, (with ``integrity``, the slow part on a big
    history) its pages, and that it and its folder are writable.
    """
    path = root / DB_NAME
    if not path.exists():
        return
    if not path.is_file():  # a directory (or socket) where the index file should be
        raise damaged_index_error(path, OSError("not a file"), _NOT_SENT)
    try:
        conn = sqlite3.connect(str(path), timeout=5, isolation_level=None)
    except sqlite3.Error as exc:
        raise _unwritable(path, exc) from None
    try:
        _probe(conn, path, integrity)
    finally:
        conn.close()


def _probe(conn: sqlite3.Connection, path: Path, integrity: bool) -> None:
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CometError(
                f"the history index {path} was written by a newer cometnb (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION}); nothing was sent",
                hint="Upgrade cometnb (pip install -U cometnb) or use another history_dir.",
            )
        _check_tables(conn, path, version)
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0] if integrity else "ok"
        if verdict != "ok":
            raise damaged_index_error(path, sqlite3.DatabaseError(str(verdict)), _NOT_SENT)
        # Not a trial write: that would also refuse a nearly full disk, which the writer
        # handles (billed images are kept elsewhere). access() sees chmod and read-only mounts.
        for target in (path, path.parent):  # the folder holds the -wal and -shm files
            if not os.access(target, os.W_OK):
                raise _unwritable(path, OSError(f"{target.name or target} is read-only"))
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise _unwritable(path, exc) from None
        # Locked, busy, a full disk ("disk I/O error" creating the WAL's -shm): inconclusive.
        # The write after the answer reports those clearly, and keeps billed images elsewhere.
        return
    except sqlite3.DatabaseError as exc:
        raise damaged_index_error(path, exc, _NOT_SENT) from None


def _check_tables(conn: sqlite3.Connection, path: Path, version: int) -> None:
    """A valid SQLite file whose schema is stamped but whose records table is gone (dropped, or
    another program's database) would fail only when storing, after billing: refuse it now."""
    if version < 1:
        return  # a new, empty index: the first write creates the table
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'"
    ).fetchone()
    if found is None:
        raise damaged_index_error(path, sqlite3.DatabaseError("no records table"), _NOT_SENT)


def _unwritable(path: Path, exc: BaseException) -> CometError:
    return CometError(
        f"the history index {path} cannot take new records ({exc}); nothing was sent",
        hint="Make the history folder writable, or set another with %config CometImg.history_dir.",
    )


# --- repair ----------------------------------------------------------------------------------


@dataclass
class RepairReport:
    """What :func:`repair` found and did (or, with ``dry_run``, would do)."""

    path: Path
    dry_run: bool = False
    rebuilt: bool = False  # the index was damaged and rebuilt from the record files
    damaged_copy: Path | None = None  # where the damaged index was moved
    restored: list[str] = field(default_factory=list)  # rows put back from their documents
    adopted: list[str] = field(default_factory=list)  # new records for unlisted image files
    temporaries: int = 0  # abandoned partial writes removed
    in_flight: list[str] = field(default_factory=list)  # records of requests a kill left sent
    problems: list[str] = field(default_factory=list)  # what could not be fixed

    @property
    def changed(self) -> bool:
        return bool(
            self.rebuilt or self.restored or self.adopted or self.temporaries or self.in_flight
        )

    def __str__(self) -> str:
        verb = "would " if self.dry_run else ""
        parts = []
        if self.rebuilt:
            parts.append(f"{verb}rebuild the damaged index from the record files")
        if self.restored:
            parts.append(f"{verb}restore {len(self.restored)} record(s) from their files")
        if self.adopted:
            parts.append(f"{verb}adopt {len(self.adopted)} unlisted image record(s)")
        if self.temporaries:
            parts.append(f"{verb}remove {self.temporaries} abandoned temporary file(s)")
        if self.in_flight:
            parts.append(
                f"{verb}record {len(self.in_flight)} request(s) a stopped process left in "
                "flight (they may have been billed)"
            )
        parts.extend(self.problems)
        return f"History {self.path}: " + ("; ".join(parts) if parts else "nothing to repair")

    def _repr_html_(self) -> str:
        import html

        return f"<p>{html.escape(str(self))}</p>"


def _damaged(path: Path) -> bool:
    """True when SQLite finds the index file corrupt (a missing file is not damaged)."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return bool(conn.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok")
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return False  # locked or unreadable: not something a rebuild would fix
    except sqlite3.DatabaseError:
        return True


def _index_rows(index: Index) -> dict[str, IndexRow] | None:
    """Every row by id, or ``None`` when the index is damaged."""
    if _damaged(index.path):
        index.close()
        return None
    try:
        return {row[0]: row for row in index.rows_after(0)}
    except (sqlite3.DatabaseError, CometError):
        index.close()
        return None


def repair(root: Path, index: Index, *, dry_run: bool = False) -> RepairReport:
    """Check the history at ``root`` and fix what can be fixed (see the module doc)."""
    report = RepairReport(root, dry_run)
    rows = _index_rows(index)
    if rows is None:
        report.rebuilt = True
        if not dry_run:
            report.damaged_copy = _move_aside(root / DB_NAME)
        rows = {}
    documents = _documents(root)
    for rid, fields in sorted(documents.items()):
        if rid not in rows:
            outside = _outside_files(root, fields["doc"])
            if outside:  # a crafted document: listing it would let views and reruns read them
                report.problems.append(
                    f"record {rid} not restored: it names files outside the history folder "
                    f"({', '.join(outside)[:160]})"
                )
                continue
            report.restored.append(rid)
            if not dry_run:
                _insert(index, fields)
    named = _named_files(rows.values(), documents.values())
    for rid, paths in sorted(_orphans(root / IMAGES, named).items()):
        report.adopted.append(rid)
        if not dry_run:
            _adopt(root, index, rid, paths)
    report.temporaries = _temporaries(root, remove=not dry_run)
    return report


def _outside_files(root: Path, doc: Mapping[str, Any]) -> list[str]:
    """The files a record document names (images, previews, an edit's inputs) that lie
    outside the history folder at ``root``."""
    named: list[object] = []
    for key, fields in (("images", ("file", "preview")), ("sources", ("file",))):
        for item in doc.get(key) or ():
            if isinstance(item, Mapping):
                named.extend(item.get(f) for f in fields)
    return [str(f) for f in named if f and _files.inside(root, f) is None]


def _move_aside(path: Path) -> Path | None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    moved = None
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{target}{suffix}"))
            moved = moved or target
    return moved


def _documents(root: Path) -> dict[str, dict[str, Any]]:
    folder = root / RECORDS
    found: dict[str, dict[str, Any]] = {}
    if folder.is_dir():
        for path in folder.glob("*.json"):
            fields = read_document(path)
            if fields is not None and f"{fields['id']}.json" == path.name:
                found[str(fields["id"])] = fields
    return found


def _insert(index: Index, fields: Mapping[str, Any]) -> None:
    index.insert(
        str(fields["id"]),
        float(fields["created_at"]),
        str(fields["prompt"]),
        str(fields["model"]),
        str(fields["status"]),
        json.dumps(list(fields["tags"]), ensure_ascii=False),
        document_json(fields["doc"]),
    )


def _named_files(rows: Iterable[IndexRow], documents: Iterable[Mapping[str, Any]]) -> set[str]:
    named: set[str] = set()
    docs = [json.loads(row[7]) for row in rows] + [dict(d["doc"]) for d in documents]
    for doc in docs:
        for image in doc.get("images") or ():
            if isinstance(image, dict) and isinstance(image.get("file"), str):
                named.add(Path(image["file"]).name)
    return named


def _orphans(folder: Path, named: set[str]) -> dict[str, list[Path]]:
    """Complete image files no record names, grouped by the record id in their names."""
    groups: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return groups
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in named or not path.is_file():
            continue
        match = _ID.match(path.name)
        if match:
            groups.setdefault(match.group(1), []).append(path)
    return groups


def _adopt(root: Path, index: Index, rid: str, paths: list[Path]) -> None:
    from cometnb._core.images import inspect_image

    images = []
    for path in sorted(paths, key=lambda p: int(_ID.match(p.name).group(2))):  # type: ignore[union-attr]
        data = path.read_bytes()
        try:
            fmt, width, height = inspect_image(data)
        except CometError:
            continue  # not an image we wrote completely: leave it for a human
        images.append(
            {
                "file": f"{IMAGES}/{path.name}",
                "preview": f"{IMAGES}/{path.name}",
                "format": fmt,
                "width": width,
                "height": height,
                "bytes": len(data),
                "revised_prompt": None,
            }
        )
    if not images:
        return
    slug = paths[0].name[len(rid) :].split("-", 2)[-1].rsplit(".", 1)[0]
    prompt = slug.replace("-", " ")
    doc = {
        "request": {"prompt": prompt},
        "images": images,
        "usage": None,
        "meta": {"adopted": True},
        "elapsed_s": 0.0,
        "error": None,
        "http_status": None,
        "origin": "repair",
        "synthetic": False,
        "version": __version__,
    }
    fields = {
        "id": rid,
        "created_at": paths[0].stat().st_mtime,
        "prompt": prompt,
        "model": "unknown",
        "status": "ok",
        "tags": ["adopted"],
        "doc": doc,
    }
    write_document(root, fields)
    _insert(index, fields)


def _temporaries(root: Path, *, remove: bool) -> int:
    if remove:
        folders = (root / IMAGES, root / PREVIEWS, root / RECORDS)
        return _files.sweep_temporaries(*folders, older_than_s=_TEMP_GRACE_S)
    cutoff = time.time() - _TEMP_GRACE_S
    count = 0
    for name in (IMAGES, PREVIEWS, RECORDS):
        folder = root / name
        if folder.is_dir():
            for entry in os.scandir(folder):
                if entry.name.startswith(".") and entry.name.endswith(_files.TEMP_SUFFIX):
                    with contextlib.suppress(OSError):
                        count += entry.stat().st_mtime < cutoff
    return count
