"""The history: every generation, durable across kernel restarts, searchable and exportable.

A history folder holds ``index.sqlite3`` (one row per request, see ``_store``), ``images/``
(the originals exactly as the API returned them) and ``previews/`` (small copies for inline
display). Files are complete on disk before the row that names them commits, so a crash can
leave an unreferenced file behind but never a record pointing at nothing.

Records are loaded with one query and kept as small objects; image bytes are read only when
asked for. Several kernels can append to one folder at once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import threading
import time
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from . import _errors, _files
from ._errors import CometError, ValidationError, redact
from ._models import ApiImage, ApiResult, GeneratedImage, Generation, ImageRequest, Status
from ._settings import active, resolve_history_dir
from ._store import Row, Store
from ._version import __version__

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Comparison", "History", "Record", "history", "new_record_id"]

IMAGES = "images"
PREVIEWS = "previews"
# Request fields that look like credentials are dropped before anything is stored.
_SECRET_FIELD = re.compile(
    r"api[-_]?key|authori[sz]ation|^auth|token$|secret|password|bearer", re.I
)


# --- ids -------------------------------------------------------------------------------------

_id_lock = threading.Lock()
_last_tick = 0
_TICKS_PER_S = 10_000  # 100 µs resolution


def new_record_id(now: float | None = None) -> tuple[str, float]:
    """A new record id and its timestamp: ``("20261122-101500-4821-3f2a9c", 1795342500.4821)``.

    Ids sort by creation time (UTC), strictly increasing within a process; the random tail
    keeps two processes that write in the same 100 µs apart.
    """
    global _last_tick
    with _id_lock:
        tick = max(int((time.time() if now is None else now) * _TICKS_PER_S), _last_tick + 1)
        _last_tick = tick
    secs, frac = divmod(tick, _TICKS_PER_S)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(secs))
    return f"{stamp}-{frac:04d}-{secrets.token_hex(3)}", tick / _TICKS_PER_S


# --- scrubbing -------------------------------------------------------------------------------


def scrub_request(value: Any) -> Any:
    """A JSON-able copy without credential-looking fields and with registered secrets redacted."""
    if isinstance(value, Mapping):
        return {
            str(k): scrub_request(v) for k, v in value.items() if not _SECRET_FIELD.search(str(k))
        }
    if isinstance(value, (list, tuple)):
        return [scrub_request(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value))


def _scrub_values(value: Any) -> Any:
    """Redact secrets in strings of response metadata (keys are kept: ``total_tokens`` stays)."""
    if isinstance(value, Mapping):
        return {str(k): _scrub_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_values(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def _error_info(error: BaseException) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": type(error).__name__,
        "message": redact(getattr(error, "message", None) or str(error)),
    }
    for name in ("hint", "status", "code", "param", "request_id", "field"):
        value = getattr(error, name, None)
        if value is not None:
            info[name] = redact(value) if isinstance(value, str) else value
    body = getattr(error, "body", None)
    if body is not None:
        info["body"] = json.loads(redact(json.dumps(body, default=str)))
    return info


def _error_from_info(info: Mapping[str, Any]) -> CometError:
    """Rebuild the error a failed record stored (its class when cometnb knows it)."""
    found = getattr(_errors, str(info.get("type")), None)
    cls = found if isinstance(found, type) and issubclass(found, CometError) else CometError
    message = str(info.get("message", "unknown error"))
    hint = info.get("hint")
    if issubclass(cls, _errors.APIError):
        return cls(
            message,
            status=info.get("status"),
            code=info.get("code"),
            param=info.get("param"),
            request_id=info.get("request_id"),
            body=info.get("body"),
            hint=hint,
        )
    if issubclass(cls, ValidationError):
        return cls(message, field=info.get("field"), hint=hint)
    return cls(message, hint=hint)


# --- records ---------------------------------------------------------------------------------


class Record:
    """One request as the history remembers it: what was asked, what came back, how it went.

    ``request`` is the body that was sent (never the key); ``params`` the same without prompt
    and model. ``images`` are :class:`GeneratedImage` objects whose bytes stay on disk until
    read. ``status`` is ``"ok"``, ``"error"`` or ``"cancelled"``; ``error`` the message.

    Example::

        >>> rec = history()[-1]  # doctest: +SKIP
        >>> rec.prompt, rec.model, rec.params.get("size"), rec.images[0].path  # doctest: +SKIP
        ('a red fox', 'gpt-image-2', '1024x1024', PosixPath('…/images/2026…-0-a-red-fox.png'))
    """

    # Only the columns are decoded at load; the JSON document (request, usage, metadata, image
    # list) is parsed on first use, which keeps loading thousands of records cheap.
    __slots__ = (
        "_doc",
        "_doc_text",
        "_images",
        "_root",
        "id",
        "model",
        "prompt",
        "status",
        "tags",
        "timestamp",
    )

    id: str
    timestamp: float
    prompt: str
    model: str
    status: Status
    tags: tuple[str, ...]
    _doc: dict[str, Any] | None
    _doc_text: str
    _images: list[GeneratedImage] | None
    _root: Path

    @classmethod
    def _from_row(cls, row: Row, root: Path) -> Record:
        rid, _seq, created, prompt, model, status, tags, doc_text = row
        rec = cls.__new__(cls)
        rec.id, rec.timestamp, rec.prompt, rec.model = rid, created, prompt, model
        rec.status = status  # type: ignore[assignment]
        rec.tags = () if tags == "[]" else tuple(json.loads(tags))
        rec._doc, rec._doc_text = None, doc_text
        rec._images = None
        rec._root = root
        return rec

    def _d(self) -> dict[str, Any]:
        doc = self._doc
        if doc is None:
            # Two threads may both parse: harmless, they produce equal documents.
            doc = self._doc = json.loads(self._doc_text)
            self._doc_text = ""
        return doc

    @property
    def request(self) -> dict[str, Any]:
        """The request body that was sent (prompt, model and every other field; no key)."""
        return self._d().get("request") or {}

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token usage as the API reported it (GPT image models), else ``None``."""
        return self._d().get("usage")

    @property
    def meta(self) -> dict[str, Any]:
        """Response metadata: size, quality, background, output_format, created."""
        return self._d().get("meta") or {}

    @property
    def elapsed_s(self) -> float:
        """Seconds from sending the request to storing the result."""
        return float(self._d().get("elapsed_s") or 0.0)

    @property
    def error_info(self) -> dict[str, Any] | None:
        """The stored error: type, message, hint, status, code, param, request_id, body."""
        return self._d().get("error")

    @property
    def http_status(self) -> int | None:
        return self._d().get("http_status")

    @property
    def origin(self) -> str | None:
        """The id of the record this one re-ran (``History.rerun``), else ``None``."""
        return self._d().get("origin")

    @property
    def synthetic(self) -> bool:
        """True when the images came from cometnb's simulator."""
        return bool(self._d().get("synthetic"))

    @property
    def version(self) -> str:
        """The cometnb version that wrote the record."""
        return str(self._d().get("version", ""))

    @property
    def _image_docs(self) -> list[dict[str, Any]]:
        return self._d().get("images") or []

    @property
    def created_at(self) -> datetime:
        """When the request was made (timezone-aware, UTC)."""
        return datetime.fromtimestamp(self.timestamp, timezone.utc)

    @property
    def params(self) -> dict[str, Any]:
        """Every request field except prompt and model."""
        return {k: v for k, v in self.request.items() if k not in ("prompt", "model")}

    @property
    def error(self) -> str | None:
        """The error message of a failed or cancelled request (``None`` when it succeeded)."""
        if self.error_info is None:
            return None
        hint = self.error_info.get("hint")
        message = str(self.error_info.get("message", ""))
        return f"{message} {hint}" if hint else message

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def images(self) -> list[GeneratedImage]:
        """The stored images (files on disk; bytes read on demand)."""
        if self._images is None:
            self._images = [self._image(d) for d in self._image_docs]
        return list(self._images)

    def _image(self, doc: Mapping[str, Any]) -> GeneratedImage:
        preview = doc.get("preview")
        return GeneratedImage(
            self._root / doc["file"],
            str(doc.get("format", "")),
            int(doc.get("width", 0)),
            int(doc.get("height", 0)),
            doc.get("revised_prompt"),
            preview_path=self._root / preview if preview else None,
        )

    @property
    def revised_prompts(self) -> list[str]:
        """Prompts the model rewrote (dall-e-3 does), in image order; empty when none."""
        return [d["revised_prompt"] for d in self._image_docs if d.get("revised_prompt")]

    @property
    def folder(self) -> Path:
        """The history folder this record belongs to (image files are below it)."""
        return self._root

    @property
    def files(self) -> list[str]:
        """Image file names relative to the history folder (``images/…``)."""
        return [str(d["file"]) for d in self._image_docs]

    def to_generation(self) -> Generation:
        """The :class:`Generation` this record stands for (what the client returns)."""
        return Generation(
            request=dict(self.request),
            images=self.images,
            usage=self.usage,
            created=self.meta.get("created"),
            elapsed_s=self.elapsed_s,
            record_id=self.id,
            meta={k: v for k, v in self.meta.items() if k != "created"},
            error=_error_from_info(self.error_info) if self.error_info else None,
            status=self.status,
            synthetic=self.synthetic,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (what ``records.jsonl`` exports hold)."""
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "prompt": self.prompt,
            "model": self.model,
            "request": self.request,
            "status": self.status,
            "error": self.error_info,
            "http_status": self.http_status,
            "images": self._image_docs,
            "revised_prompts": self.revised_prompts,
            "usage": self.usage,
            "meta": self.meta,
            "elapsed_s": self.elapsed_s,
            "tags": list(self.tags),
            "origin": self.origin,
            "synthetic": self.synthetic,
            "version": self.version,
        }

    def _repr_html_(self) -> str:
        from . import _render

        return _render.record_html(self)

    def __repr__(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        what = f"{len(self._image_docs)} image(s)" if self.ok else self.status
        return f"<Record {self.id} {self.model} {what} {prompt!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and (self.id, self.tags) == (other.id, other.tags)

    def __hash__(self) -> int:
        return hash(self.id)


class Comparison:
    """Records side by side; displays as aligned previews with the differing settings marked.

    Example::

        >>> cmp = history().compare(-2, -1)  # doctest: +SKIP
        >>> cmp.differing  # doctest: +SKIP
        {'quality': ['low', 'high']}
    """

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = list(records)

    @property
    def differing(self) -> dict[str, list[Any]]:
        """Request fields whose values differ, with each record's value (``None``: not sent)."""
        from ._render import split_settings

        return split_settings(self.records)[1]

    @property
    def shared(self) -> dict[str, Any]:
        """Request fields every record sent with the same value."""
        from ._render import split_settings

        return split_settings(self.records)[0]

    def _repr_html_(self) -> str:
        from . import _render

        return _render.compare_html(self.records)

    def __repr__(self) -> str:
        return f"<Comparison of {len(self.records)} records; differing: {sorted(self.differing)}>"


# --- the history -----------------------------------------------------------------------------

RecordRef = Record | str | int


class History:
    """A history folder: an index of every request plus the image files.

    ``History(path)`` opens any folder (created on the first write); ``cometnb.history()``
    returns the active one. Indexing is oldest → newest; ``h[-1]`` is the latest.

    Example::

        >>> h = History("cometnb-history")  # doctest: +SKIP
        >>> len(h), h[-1].prompt  # doctest: +SKIP
        (42, 'a red fox in snow')
        >>> h.find(text="fox", status="ok")  # doctest: +SKIP
        [<Record 20261122-101500-4821-3f2a9c gpt-image-2 1 image(s) 'a red fox in snow'>]
        >>> h.export("foxes.html")  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(os.path.abspath(resolve_history_dir(path)))
        self._store = Store(self.path)
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._by_id: dict[str, Record] = {}
        self._seq = 0
        self._folders_ready = False

    # --- writing ---------------------------------------------------------------------------

    def record_success(
        self,
        request: Mapping[str, Any],
        result: ApiResult,
        *,
        elapsed_s: float,
        tags: Iterable[str] = (),
        origin: str | None = None,
    ) -> Record:
        """Store the images of a successful response, then commit its record; returns it.

        Safe to call from several threads and processes at once.
        """
        body = scrub_request(request)
        record_id, created = new_record_id()
        images = self._write_images(record_id, str(body.get("prompt", "")), result)
        meta = _scrub_values(dict(result.meta))
        if result.created is not None:
            meta["created"] = result.created
        doc = {
            "request": body,
            "images": images,
            "usage": _scrub_values(result.usage) if result.usage is not None else None,
            "meta": meta,
            "elapsed_s": float(elapsed_s),
            "error": None,
            "http_status": None,
            "origin": origin,
            "synthetic": bool(result.synthetic),
            "version": __version__,
        }
        return self._commit(record_id, created, body, "ok", tags, doc)

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
        info = _error_info(error)
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
            "version": __version__,
        }
        return self._commit(record_id, created, body, status, tags, doc)

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

    def _write_images(self, record_id: str, prompt: str, result: ApiResult) -> list[dict[str, Any]]:
        try:
            self._prepare_folders()
            return [
                self._write_image(record_id, i, prompt, img) for i, img in enumerate(result.images)
            ]
        except OSError as exc:  # a full disk or a read-only folder: one clear error
            named = [
                (_files.image_name(record_id, i, prompt, img.format), img.data)
                for i, img in enumerate(result.images)
            ]
            kept = _files.keep_elsewhere(named)
            raise CometError(
                f"could not save the generated image in {self.path / IMAGES} "
                f"({exc.strerror or type(exc).__name__})"
                + (f"; a copy is in {kept}" if kept else ""),
                hint="Free disk space or set a writable folder with %config "
                "CometImg.history_dir; the generation was billed.",
            ) from None

    def _prepare_folders(self) -> None:
        if self._folders_ready:
            return
        for name in (IMAGES, PREVIEWS):
            (self.path / name).mkdir(parents=True, exist_ok=True)
        _files.sweep_temporaries(self.path / IMAGES, self.path / PREVIEWS)
        self._folders_ready = True

    def _write_image(
        self, record_id: str, index: int, prompt: str, img: ApiImage
    ) -> dict[str, Any]:
        name = _files.image_name(record_id, index, prompt, img.format)
        _files.atomic_write(self.path / IMAGES / name, img.data)
        doc: dict[str, Any] = {
            "file": f"{IMAGES}/{name}",
            "preview": None,
            "format": img.format,
            "width": img.width,
            "height": img.height,
            "bytes": len(img.data),
            "revised_prompt": redact(img.revised_prompt) if img.revised_prompt else None,
        }
        doc["preview"] = self._write_preview(record_id, index, img.data) or doc["file"]
        return doc

    def _write_preview(self, record_id: str, index: int, data: bytes) -> str | None:
        """The preview's relative path; ``None`` when the original is small enough to show."""
        from ._decode import make_preview

        try:
            preview, mime = make_preview(data, active().thumbnail_px)
        except CometError:
            return None  # the original stays the source of truth; views fall back to it
        if preview == data:
            return None
        name = _files.preview_name(record_id, index, mime)
        try:
            _files.atomic_write(self.path / PREVIEWS / name, preview)
        except OSError:
            return None  # the original is saved; a preview is only a convenience
        return f"{PREVIEWS}/{name}"

    def _commit(
        self,
        record_id: str,
        created: float,
        body: Mapping[str, Any],
        status: str,
        tags: Iterable[str],
        doc: Mapping[str, Any],
    ) -> Record:
        try:
            row = self._store.insert(
                record_id,
                created,
                str(body.get("prompt", "")),
                str(body.get("model", "")),
                status,
                _tags_json(tags),
                json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str),
            )
        except Exception as exc:  # sqlite3.Error, OSError: the files are safe, say where
            raise CometError(
                f"could not record the request in {self._store.path} ({type(exc).__name__}: {exc})",
                hint=f"Any images are kept in {self.path / IMAGES}.",
            ) from exc
        return Record._from_row(row, self.path)

    # --- reading ---------------------------------------------------------------------------

    def _sync(self) -> list[str]:
        """Catch up with rows added or changed (by any process) since the last look."""
        with self._lock:
            rows = self._store.rows_after(self._seq)
            if rows:
                known = len(self._by_id)
                for row in rows:
                    rec = Record._from_row(row, self.path)
                    if rec.id not in self._by_id:
                        self._ids.append(rec.id)
                    self._by_id[rec.id] = rec
                    self._seq = max(self._seq, row[1])
                if len(self._by_id) != known:
                    self._ids.sort()  # nearly sorted already: linear in practice
            return self._ids

    def records(self) -> list[Record]:
        """Every record, oldest → newest (a snapshot list)."""
        with self._lock:
            ids = self._sync()
            return [self._by_id[i] for i in ids]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sync())

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        with self._lock:
            ids = self._sync()
            if isinstance(index, slice):
                return [self._by_id[i] for i in ids[index]]
            try:
                return self._by_id[ids[index]]
            except IndexError:
                raise IndexError(
                    f"history index {index} out of range ({len(ids)} records)"
                ) from None

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __contains__(self, item: object) -> bool:
        rid = item.id if isinstance(item, Record) else item
        return isinstance(rid, str) and self.get(rid) is not None

    def get(self, record_id: str | Record) -> Record | None:
        """The record with this id (``None`` when there is none)."""
        rid = record_id.id if isinstance(record_id, Record) else record_id
        with self._lock:
            self._sync()
            return self._by_id.get(rid)

    def _resolve(self, ref: RecordRef) -> Record:
        if isinstance(ref, int) and not isinstance(ref, bool):
            return self[ref]
        rec = self.get(ref) if isinstance(ref, (str, Record)) else None
        if rec is None:
            raise KeyError(f"no record {getattr(ref, 'id', ref)!r} in the history at {self.path}")
        return rec

    def find(
        self,
        text: str | None = None,
        model: str | None = None,
        tag: str | None = None,
        status: str | None = None,
    ) -> list[Record]:
        """Records matching every given filter, oldest → newest.

        ``text`` is a case-insensitive substring of the prompt or a revised prompt; ``model``,
        ``tag`` and ``status`` must match exactly.
        """
        needle = text.casefold() if text else None
        found = []
        for rec in self.records():
            if model is not None and rec.model != model:
                continue
            if status is not None and rec.status != status:
                continue
            if tag is not None and tag not in rec.tags:
                continue
            if needle is not None and not _mentions(rec, needle):
                continue
            found.append(rec)
        return found

    def compare(self, *records: RecordRef) -> Comparison:
        """Records side by side (ids, indexes or Records); differing settings highlighted."""
        if not records:
            raise ValidationError("compare() needs at least one record (an id, index or Record)")
        return Comparison([self._resolve(r) for r in records])

    # --- changing --------------------------------------------------------------------------

    def tag(self, record: RecordRef, *tags: str) -> Record:
        """Add tags to a record (stored at once); returns the updated record."""
        rec = self._resolve(record)
        self._store.set_tags(rec.id, _tags_json((*rec.tags, *tags)))
        with self._lock:
            self._sync()
            return self._by_id[rec.id]

    def untag(self, record: RecordRef, *tags: str) -> Record:
        """Remove tags from a record; returns the updated record."""
        rec = self._resolve(record)
        self._store.set_tags(rec.id, _tags_json(t for t in rec.tags if t not in tags))
        with self._lock:
            self._sync()
            return self._by_id[rec.id]

    def rerun(self, record: RecordRef, *, client: Any = None, **overrides: Any) -> Generation:
        """Send a recorded request again (with ``overrides``); the new record names its origin.

        ``client`` is a ``cometnb.Client`` to use (default: a new one storing into this
        history). ``None`` as an override removes a field.
        """
        rec = self._resolve(record)
        request = ImageRequest.from_dict(rec.request).with_overrides(**overrides)
        if client is not None:
            return client.run(request, origin=rec.id)  # type: ignore[no-any-return]
        import importlib

        # Imported by name: the client imports this module, and this keeps the arrow one-way.
        client_cls = importlib.import_module("cometnb._client").Client
        own = client_cls(history=self)
        try:
            return own.run(request, origin=rec.id)  # type: ignore[no-any-return]
        finally:
            own.close()

    # --- output ----------------------------------------------------------------------------

    def export(self, path: str | os.PathLike[str], records: Iterable[Record] | None = None) -> Path:
        """Write the history (or ``records``) to ``path``; the format follows the suffix.

        ``.html``: one self-contained gallery file (previews embedded, opens offline);
        ``.zip``: the original image files plus ``records.jsonl``; ``.jsonl``: metadata only.
        """
        from ._export import export

        chosen = self.records() if records is None else list(records)
        return export(chosen, Path(path), title=f"cometnb history: {self.path.name}")

    def to_dataframe(self) -> pd.DataFrame:
        """One row per record (needs pandas: ``pip install cometnb[pandas]``)."""
        from ._export import to_dataframe

        return to_dataframe(self.records())

    def close(self) -> None:
        """Close the index connection (reopened automatically when used again)."""
        self._store.close()

    def _repr_html_(self) -> str:
        from . import _render

        return _render.history_html(self.records())

    def __repr__(self) -> str:
        return f"<History {self.path} ({len(self)} records)>"


def _mentions(rec: Record, needle: str) -> bool:
    if needle in rec.prompt.casefold():
        return True
    return any(needle in p.casefold() for p in rec.revised_prompts)


def _tags_json(tags: Iterable[str]) -> str:
    seen: dict[str, None] = {}
    for tag in tags:
        text = redact(str(tag).strip())
        if text:
            seen[text] = None
    return json.dumps(list(seen), ensure_ascii=False)


_histories: dict[str, History] = {}
_histories_lock = threading.Lock()


def history(path: str | os.PathLike[str] | None = None) -> History:
    """The active :class:`History` (``CometImg.history_dir``, ``$COMETNB_HISTORY`` or
    ``./cometnb-history``), or the one at ``path``; one instance per folder per process.

    Example::

        >>> import cometnb
        >>> h = cometnb.history()  # doctest: +SKIP
        >>> h[-1]  # the latest record  # doctest: +SKIP
    """
    key = os.path.abspath(resolve_history_dir(path))
    with _histories_lock:
        found = _histories.get(key)
        if found is None:
            found = _histories[key] = History(key)
        return found


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`history`.

    DESIGN.md promises ``cometnb.history()``, but importing the submodule ``cometnb.history``
    binds the module to that package attribute, hiding the function. Calling the module
    forwards to the function, so both spellings work whatever was imported first.
    """

    def __call__(self, path: str | os.PathLike[str] | None = None) -> History:
        return history(path)


sys.modules[__name__].__class__ = _CallableModule
