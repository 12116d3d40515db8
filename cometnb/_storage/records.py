"""Records: one request as the history remembers it, and the helpers that make record data
safe to keep (ids, credential scrubbing, error documents); comparing records (which request
settings they share and which differ)."""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cometnb._core import errors as _errors
from cometnb._core.billing import BillingRisk
from cometnb._core.errors import CometError, ValidationError, redact
from cometnb._core.generations import GeneratedImage, Generation, ImageRequest, Status
from cometnb._core.protocols import Runner
from cometnb._core.session import render
from cometnb._core.text import clip
from cometnb._storage import files as _files
from cometnb._storage.index import IndexRow
from cometnb._storage.sources import Source, edit_record, request_of

if TYPE_CHECKING:
    from cometnb._core.prices import Cost
    from cometnb._core.provenance import ContentCredentials

__all__ = [
    "IMAGES",
    "PREVIEWS",
    "Comparison",
    "Record",
    "document_json",
    "error_document",
    "new_record_id",
    "record_cost",
    "scrub_request",
    "scrub_values",
    "split_settings",
    "tags_json",
]


IMAGES = "images"
PREVIEWS = "previews"
# Request fields that look like credentials are dropped before anything is stored.
_SECRET_FIELD = re.compile(
    r"api[-_]?key|authori[sz]ation|^auth|token$|secret|password|bearer", re.I
)


# --- ids -------------------------------------------------------------------------------------

_id_lock = threading.Lock()
# Truly process-wide, not per session: ids must rise strictly across every session this
# process ever runs (a test's fresh session writes to the same clock), so it is a module tick.
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


def scrub_values(value: Any) -> Any:
    """Redact secrets in strings of response metadata (keys are kept: ``total_tokens`` stays)."""
    if isinstance(value, Mapping):
        return {str(k): scrub_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_values(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def document_json(value: Any) -> str:
    """A record's document as stored (index row and ``records/`` file): compact JSON in which
    a number that is not finite (``NaN`` or ``Infinity`` in a server's ``usage``, which
    SQLite's JSON functions reject) is kept as its text, so the record is always stored."""
    try:
        return json.dumps(value, **_COMPACT)
    except ValueError:  # a number that is not finite: walk the document only then
        return json.dumps(_finite(value), **_COMPACT)


_COMPACT: dict[str, Any] = {
    "ensure_ascii": False,
    "separators": (",", ":"),
    "default": str,
    "allow_nan": False,
}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def tags_json(tags: Iterable[str]) -> str:
    """The index's tags column: a JSON list, redacted, blanks and repeats dropped."""
    seen: dict[str, None] = {}
    for tag in tags:
        text = redact(str(tag).strip())
        if text:
            seen[text] = None
    return json.dumps(list(seen), ensure_ascii=False)


def error_document(error: BaseException) -> dict[str, Any]:
    """What a failed record stores about its error (read back as :attr:`Record.error_info`)."""
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
    billing = getattr(error, "billing", None)
    if isinstance(billing, BillingRisk):
        info["billing"] = billing.value  # what it cost is read from here, never the message
    return info


def _error_from_info(info: Mapping[str, Any]) -> CometError:
    """Rebuild the error a failed record stored (its class when cometnb knows it)."""
    found = getattr(_errors, str(info.get("type")), None)
    cls = found if isinstance(found, type) and issubclass(found, CometError) else CometError
    message = str(info.get("message", "unknown error"))
    hint = info.get("hint")
    error: CometError
    if issubclass(cls, _errors.APIError):
        error = cls(
            message,
            status=info.get("status"),
            code=info.get("code"),
            param=info.get("param"),
            request_id=info.get("request_id"),
            body=info.get("body"),
            hint=hint,
        )
    elif issubclass(cls, ValidationError):
        error = cls(message, field=info.get("field"), hint=hint)
    else:
        error = cls(message, hint=hint)
    error.billing = BillingRisk.parse(info.get("billing"))  # None in a record from before
    return error


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
    def _from_row(cls, row: IndexRow, root: Path) -> Record:
        rid, _seq, created, prompt, model, status, tags, doc_text = row
        rec = cls.__new__(cls)
        rec.id, rec.timestamp, rec.prompt, rec.model = rid, created, prompt, model
        rec.status = status  # type: ignore[assignment]
        rec.tags = () if tags == "[]" else tuple(json.loads(tags))
        rec._doc, rec._doc_text = None, doc_text
        rec._images = None
        rec._root = root
        return rec

    def _document(self) -> dict[str, Any]:
        """The record's stored JSON document (request, images, usage, meta, error, ...),
        parsed on first use."""
        doc = self._doc
        if doc is None:
            # Two threads may both parse: harmless, they produce equal documents.
            doc = self._doc = json.loads(self._doc_text)
            self._doc_text = ""
        return doc

    @property
    def request(self) -> dict[str, Any]:
        """The request body that was sent (prompt, model and every other field; no key)."""
        return self._document().get("request") or {}

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token usage as the API reported it (GPT image models), else ``None``."""
        return self._document().get("usage")

    @property
    def meta(self) -> dict[str, Any]:
        """Response metadata: size, quality, background, output_format, created."""
        return self._document().get("meta") or {}

    @property
    def elapsed_s(self) -> float:
        """Seconds from sending the request to storing the result."""
        return float(self._document().get("elapsed_s") or 0.0)

    @property
    def error_info(self) -> dict[str, Any] | None:
        """The stored error: type, message, hint, status, code, param, request_id, body."""
        return self._document().get("error")

    @property
    def http_status(self) -> int | None:
        return self._document().get("http_status")

    @property
    def origin(self) -> str | None:
        """The id of the record this one re-ran (``History.rerun``), else ``None``."""
        return self._document().get("origin")

    @property
    def kind(self) -> str:
        """``"edit"`` when the request carried input images, else ``"generate"`` (also for
        records written before edits existed)."""
        return str(self._document().get("kind") or "generate")

    @property
    def sources(self) -> list[Source]:
        """An edit's inputs (images, then the mask), stored once by content in the history
        folder; ``[]`` for a generation."""
        return [Source(d, self._root, self.id) for d in self._document().get("sources") or []]

    @property
    def parent(self) -> str | None:
        """The id of the record the first input image came from (``None`` when it was a file
        or a notebook value, and for generations)."""
        return self._document().get("parent")

    def to_request(self) -> ImageRequest:
        """The request again, inputs included (what ``History.rerun`` sends)."""
        return request_of(self)

    def edit(self, prompt: str, *, client: Runner | None = None, **overrides: Any) -> Generation:
        """Edit this record's first image with ``prompt`` (``image=K`` picks another; any
        other field as for ``Client.edit``); the result's ``parent`` is this record.

        ``client`` is a ``cometnb.Client`` to use (default: a new one storing into this
        record's history).

        Example::

            >>> night = history()[-1].edit("the same scene at night")  # doctest: +SKIP
        """
        return edit_record(self, prompt, client, overrides)

    @property
    def synthetic(self) -> bool:
        """True when the images came from cometnb's simulator."""
        return bool(self._document().get("synthetic"))

    @property
    def version(self) -> str:
        """The cometnb version that wrote the record."""
        return str(self._document().get("version", ""))

    @property
    def _image_docs(self) -> list[dict[str, Any]]:
        return self._document().get("images") or []

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
            self._inside(doc.get("file")),
            str(doc.get("format", "")),
            int(doc.get("width", 0)),
            int(doc.get("height", 0)),
            doc.get("revised_prompt"),
            preview_path=self._inside(preview),
            source={
                "prompt": self.prompt,
                "model": self.model,
                "params": self.params,
                "record_id": self.id,
            },
        )

    @property
    def c2pa(self) -> ContentCredentials | None:
        """The Content Credentials (C2PA) of the record's first image that carries any:
        issuer, claim generator, digital source type, ``state`` (``"valid"``, ``"invalid"``)
        and a short ``summary``; ``None`` when no image has them. Read on first use, cached.
        Each image's own are ``rec.images[k].c2pa``."""
        for image in self.images:
            found = image.c2pa
            if found is not None:
                return found
        return None

    def _inside(self, relative: object) -> Path | None:
        """``root / relative`` when it stays inside the history folder (``files.inside``)."""
        return _files.inside(self._root, relative)

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
            _cost=self.cost,
        )

    @property
    def cost(self) -> Cost:
        """What the request cost, as stored when it ran (with the price table's name and date).

        A record written before costs were kept is priced with today's table, marked estimated.
        """
        return record_cost(self._document(), self.status)

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
            "kind": self.kind,
            "sources": [src.to_dict() for src in self.sources],
            "parent": self.parent,
            "origin": self.origin,
            "synthetic": self.synthetic,
            "cost": self.cost.to_dict(),
            "version": self.version,
        }

    def _repr_html_(self) -> str:
        return render("record", self)

    def __repr__(self) -> str:
        prompt = clip(self.prompt, 40)
        what = f"{len(self._image_docs)} image(s)" if self.ok else self.status
        return f"<Record {self.id} {self.model} {what} {prompt!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and (self.id, self.tags) == (other.id, other.tags)

    def __hash__(self) -> int:
        return hash(self.id)


_MISSING = object()


def split_settings(records: Sequence[Record]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """``(shared, differing)`` request fields: shared values once; per-record values otherwise.

    A field one record did not send counts as differing (its value shows as ``None``).
    """
    keys: dict[str, None] = {}
    for rec in records:
        keys.update(dict.fromkeys(rec.request))
    shared: dict[str, Any] = {}
    differing: dict[str, list[Any]] = {}
    for key in keys:
        values = [rec.request.get(key, _MISSING) for rec in records]
        if all(v == values[0] for v in values) and values[0] is not _MISSING:
            shared[key] = values[0]
        else:
            differing[key] = [None if v is _MISSING else v for v in values]
    return shared, differing


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
        return split_settings(self.records)[1]

    @property
    def shared(self) -> dict[str, Any]:
        """Request fields every record sent with the same value."""
        return split_settings(self.records)[0]

    def _repr_html_(self) -> str:
        return render("compare", self.records)

    def __repr__(self) -> str:
        return f"<Comparison of {len(self.records)} records; differing: {sorted(self.differing)}>"


def record_cost(doc: Mapping[str, Any], status: str) -> Cost:
    """The cost a record stored, or (older records) today's price of it, marked estimated."""
    from cometnb._core.prices import Cost, actual_cost, failure_cost

    stored = doc.get("cost")
    if isinstance(stored, Mapping):
        return Cost.from_dict(stored)
    body = doc.get("request") or {}
    if status == "ok":
        found = actual_cost(body, doc.get("usage"), len(doc.get("images") or ()), doc.get("meta"))
    else:
        error = doc.get("error") or {}
        code = error.get("status")
        http = code if isinstance(code, int) and not isinstance(code, bool) else None
        found = failure_cost(body, str(error.get("type", "")), http)
    if found.usd is None:
        return found
    return Cost(
        found.usd, True, f"{found.basis}; priced now, the record kept no cost", found.prices
    )
