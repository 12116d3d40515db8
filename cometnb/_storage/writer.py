"""Storing generations in a history folder: the image files first, then the record naming them.

Originals go to ``images/`` exactly as the API returned them, small copies for inline display
to ``previews/``; each file is complete on disk (``files.atomic_write``) before the index row
that names it commits, so a crash can leave an unreferenced file behind but never a record
pointing at nothing. Everything written is scrubbed of credentials first.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cometnb._core.billing import BillingRisk
from cometnb._core.byte_limits import MB
from cometnb._core.edit_inputs import EditBody
from cometnb._core.errors import CometError, redact
from cometnb._core.generations import ApiImage, ApiResult, Status
from cometnb._core.prices import actual_cost
from cometnb._core.settings import active
from cometnb._storage import files as _files
from cometnb._storage import repair as _repair
from cometnb._storage.index import Index
from cometnb._storage.preview_queue import PreviewJob, previews
from cometnb._storage.records import (
    IMAGES,
    PREVIEWS,
    Record,
    document_json,
    error_document,
    new_record_id,
    scrub_request,
    scrub_values,
    tags_json,
)
from cometnb._storage.sources import parent_of, source_docs, store_sources
from cometnb._storage.spend import cost_of_failure
from cometnb._version import __version__

__all__ = ["MIN_FREE_BYTES", "HistoryWriter"]

# After a store failed for lack of space, requests wait until this much is free again (a
# typical image and its record; the next failure, if it is not enough, stops them again).
MIN_FREE_BYTES = 2 * MB
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class HistoryWriter:
    """Stores successes and failures in the history folder ``path`` (whose index is ``index``),
    and says before anything is sent whether it can (:meth:`check_writable`).

    :class:`~cometnb._storage.folder.History` extends it with reading, searching and tagging,
    so a history checks and writes through these methods directly; safe to call from several
    threads and processes at once (the index serialises the commits).

    Example::

        >>> history = History("cometnb-history")  # a HistoryWriter  # doctest: +SKIP
        >>> history.record_success(body, result, elapsed_s=1.2).files  # doctest: +SKIP
        ['images/20261122-101500-4821-3f2a9c-0-a-red-fox.png']
    """

    def __init__(self, path: Path, index: Index) -> None:
        self.path = path
        self._index = index
        self._folders_ready = False
        self._index_checked = False  # the full page check runs once per writer
        self._out_of_space = False  # a result could not be stored for lack of space

    def record_success(
        self,
        request: Mapping[str, Any],
        result: ApiResult,
        *,
        elapsed_s: float,
        tags: Iterable[str] = (),
        origin: str | None = None,
    ) -> Record:
        """Store the images of a successful response, then commit its record; returns it."""
        body = scrub_request(request)
        record_id, created = new_record_id()
        jobs: list[PreviewJob] = []
        images = self._write_images(record_id, str(body.get("prompt", "")), result, jobs)
        meta = scrub_values(dict(result.meta))
        if result.created is not None:
            meta["created"] = result.created
        doc = {
            "request": body,
            "images": images,
            "usage": scrub_values(result.usage) if result.usage is not None else None,
            "meta": meta,
            "elapsed_s": float(elapsed_s),
            "error": None,
            "http_status": None,
            "origin": origin,
            "synthetic": bool(result.synthetic),
            # Priced now, with the table in force: a later price change does not rewrite it.
            "cost": actual_cost(body, result.usage, len(result.images), result.meta).to_dict(),
            "version": __version__,
            **self._lineage(request),
        }
        record = self._commit(record_id, created, body, "ok", tags, doc)
        previews().submit(jobs)  # previews after the commit, off the request path
        return record

    def record_failure(
        self,
        request: Mapping[str, Any],
        error: BaseException,
        *,
        elapsed_s: float,
        tags: Iterable[str] = (),
        origin: str | None = None,
        status: Status = "error",
        synthetic: bool = False,
    ) -> Record:
        """Commit the record of a request that failed (``"error"``) or was ``"cancelled"``."""
        if status not in ("error", "cancelled"):
            raise ValueError(f"a failure's status is 'error' or 'cancelled'; got {status!r}")
        body = scrub_request(request)
        record_id, created = new_record_id()
        info = error_document(error)
        doc = {
            "request": body,
            "images": [],
            "usage": None,
            "meta": {},
            "elapsed_s": float(elapsed_s),
            "error": info,
            "http_status": info.get("status"),
            "origin": origin,
            "synthetic": bool(synthetic),
            "cost": cost_of_failure(body, error).to_dict(),
            "version": __version__,
            **self._lineage(request),
        }
        return self._commit(record_id, created, body, status, tags, doc)

    def _lineage(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``kind``, ``sources`` and ``parent`` of the record; an edit's inputs are stored once
        by content under ``sources/`` (a failure to store them must not lose the result)."""
        if not isinstance(request, EditBody):
            return {"kind": "generate", "sources": [], "parent": None}
        try:
            docs = store_sources(self.path, request)
        except OSError:
            docs = source_docs(request)  # listed without files; the result matters more
        return {"kind": "edit", "sources": scrub_values(docs), "parent": parent_of(docs)}

    def check_writable(self) -> None:
        """Raise :class:`CometError` when images could not be saved here, before anything is
        sent (and billed): the folder cannot be created, or it is read-only. (A disk that
        fills up meanwhile is only found when writing.)"""
        problem = None
        try:
            self._prepare_folders()
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
        if problem is None and not os.access(self.path / IMAGES, os.W_OK):
            problem = "read-only"
        if problem is not None:
            raise CometError(
                f"the history folder {self.path} cannot hold new images ({problem}); "
                "nothing was sent",
                hint="Set a writable folder with %config CometImg.history_dir.",
            )
        if self._out_of_space:
            self._check_space()
        # The index too: a read-only, corrupt or newer one would fail after billing.
        _repair.probe_index(self.path, integrity=not self._index_checked)
        self._index_checked = True

    def _check_space(self) -> None:
        """After a result could not be stored for lack of space, send nothing more until there
        is room again: the next answer would be billed and fail the same way."""
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:
            return
        if free >= MIN_FREE_BYTES:
            self._out_of_space = False
            return
        error = CometError(
            f"the disk holding {self.path} is full ({free / MB:.1f} MB free), and the last "
            "result could not be stored there; nothing more was sent",
            hint="Free disk space or set another folder with %config CometImg.history_dir.",
        )
        error.billing = BillingRisk.NOT_SENT
        raise error

    def _note_failure(self, exc: BaseException) -> None:
        if getattr(exc, "errno", None) in _NO_SPACE or "disk is full" in str(exc):
            self._out_of_space = True

    # --- files -----------------------------------------------------------------------------

    def _prepare_folders(self) -> None:
        if self._folders_ready:
            return
        for name in (IMAGES, PREVIEWS, _repair.RECORDS):
            (self.path / name).mkdir(parents=True, exist_ok=True)
        _files.sweep_temporaries(self.path / IMAGES, self.path / PREVIEWS)
        self._folders_ready = True

    def _write_images(
        self, record_id: str, prompt: str, result: ApiResult, jobs: list[PreviewJob]
    ) -> list[dict[str, Any]]:
        try:
            self._prepare_folders()
            return [
                self._write_image(record_id, i, prompt, img, jobs)
                for i, img in enumerate(result.images)
            ]
        except OSError as exc:  # a full disk or a read-only folder: one clear error
            self._note_failure(exc)
            named = [
                (_files.image_name(record_id, i, prompt, img.format), img.data)
                for i, img in enumerate(result.images)
            ]
            kept = _files.keep_elsewhere(named)
            names = ", ".join(name for name, _ in named)
            raise CometError(
                f"could not save the generated image in the history "
                f"({exc.strerror or type(exc).__name__})"
                + (f"; a copy is in {kept}: {names}" if kept else ""),
                hint="Free disk space or set a writable folder with %config "
                "CometImg.history_dir; the generation was billed.",
            ) from None

    def _write_image(
        self, record_id: str, index: int, prompt: str, img: ApiImage, jobs: list[PreviewJob]
    ) -> dict[str, Any]:
        """Write the original (the one fsync of the image); name its preview, made later."""
        name = _files.image_name(record_id, index, prompt, img.format)
        original = self.path / IMAGES / name
        _files.atomic_write(original, img.data)
        doc: dict[str, Any] = {
            "file": f"{IMAGES}/{name}",
            "preview": f"{IMAGES}/{name}",  # small enough to show as it is
            "format": img.format,
            "width": img.width,
            "height": img.height,
            "bytes": len(img.data),
            "revised_prompt": redact(img.revised_prompt) if img.revised_prompt else None,
        }
        px = active().thumbnail_px
        # An SVG is never its own preview (it may carry scripts): it always gets a raster.
        if max(img.width, img.height) > px or img.format == "svg":
            preview = _files.preview_name(record_id, index, "image/webp")
            doc["preview"] = f"{PREVIEWS}/{preview}"
            jobs.append(PreviewJob(original, self.path / PREVIEWS / preview, px))
        return doc

    # --- the index -------------------------------------------------------------------------

    def _commit(
        self,
        record_id: str,
        created: float,
        body: Mapping[str, Any],
        status: str,
        tags: Iterable[str],
        doc: Mapping[str, Any],
    ) -> Record:
        fields = {
            "id": record_id,
            "created_at": created,
            "prompt": str(body.get("prompt", "")),
            "model": str(body.get("model", "")),
            "status": status,
            "tags": json.loads(tags_json(tags)),
            "doc": doc,
        }
        # Beside the images, before the row: the index can be rebuilt from these files. (The
        # row below is the record; a full disk fails there, with the clear error.)
        with contextlib.suppress(OSError):
            _repair.write_document(self.path, fields)
        try:
            row = self._index.insert(
                record_id,
                created,
                fields["prompt"],
                fields["model"],
                status,
                tags_json(tags),
                document_json(doc),
            )
        except Exception as exc:  # sqlite3.Error, OSError: the files are safe, say where
            self._note_failure(exc)
            raise CometError(
                f"could not record the request in {self._index.path} ({type(exc).__name__}: {exc})",
                hint=f"Any images are kept in {self.path / IMAGES}.",
            ) from exc
        return Record._from_row(row, self.path)
