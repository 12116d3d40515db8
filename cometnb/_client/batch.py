"""A resumable batch: reading its items (prompts, dicts, ImageRequests, a DataFrame, a .csv /
.jsonl path) into keyed requests, where each item stands (:class:`Batch`: done, failed,
uncertain, pending, its cost), and recovery after a run stopped: items in flight settled from
the history, and which failures may have been billed (read from the failure's BillingRisk;
:func:`legacy_may_be_billed` for what was stored before). ``cometnb.batch(...)``
(:mod:`cometnb._client.batch_run`) returns a Batch. Uncertain items may have been billed without
an image coming back and are sent again only with ``retry_billed=True``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from cometnb._client.retry import QUOTA_HINT
from cometnb._core.billing import BillingRisk, status_may_be_billed
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    CometError,
    RateLimitError,
    ResponseError,
    ValidationError,
)
from cometnb._core.generations import ImageRequest
from cometnb._core.model_registry import CAPABILITIES
from cometnb._core.prices import Cost
from cometnb._storage.batches import BatchStore, ItemState, State
from cometnb._storage.folder import History
from cometnb._storage.records import Record

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CANCELLED_IN_FLIGHT",
    "IN_FLIGHT",
    "KILLED_IN_FLIGHT",
    "ORIGIN",
    "Batch",
    "BatchItem",
    "BatchItems",
    "billed_note",
    "cancelled_in_flight",
    "halts_the_batch",
    "in_flight_before",
    "legacy_may_be_billed",
    "load_items",
    "may_be_billed",
    "request_key",
    "settle_in_flight",
]

# --- batch_items -------------------------------------------------------------------------------
# A batch's input, read into keyed requests: prompts, dicts, ImageRequests, a DataFrame, a file.

# What ``cometnb.batch`` reads: a .csv / .jsonl path, a DataFrame, or prompts, dicts (a
# ``prompt``, an optional ``id``, API fields, other columns as tags) and ImageRequests.
BatchItems: TypeAlias = (
    "str | os.PathLike[str] | pd.DataFrame | Iterable[str | Mapping[str, Any] | ImageRequest]"
)

_API_FIELDS = frozenset({"prompt", "model"}).union(*(c.fields for c in CAPABILITIES.values()))
_TEXT_FIELDS = frozenset({"prompt", "model", "id", "tags"})  # never JSON-parsed
_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch: its key, where it is in the input, the request and its tags."""

    key: str
    position: int
    request: ImageRequest
    tags: tuple[str, ...] = ()


def request_key(body: Mapping[str, Any]) -> str:
    """A short stable hash of a request body (the key of an item without an id).

    Example::

        >>> request_key({"prompt": "a fox", "model": "gpt-image-2"})
        'r-e972011acf714e51'
    """
    text = json.dumps(dict(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "r-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def load_items(items: BatchItems, defaults: Mapping[str, Any]) -> list[BatchItem]:
    """Read ``items`` into keyed requests; ``defaults`` fill fields an item does not set.

    Raises :class:`ValidationError` naming the item (its position and id) that is unusable.
    """
    rows = list(_rows(items))
    base_tags = _tags(defaults.get("tags"))
    fields = {k: v for k, v in defaults.items() if k != "tags" and v is not None}
    loaded: list[BatchItem] = []
    seen: dict[str, int] = {}
    for position, row in enumerate(rows):
        try:
            request, given, tags = _parse(row, fields)
            request.validate()
        except ValidationError as exc:
            raise ValidationError(
                f"item {position}{_named(row)}: {exc.message}", field=exc.field, hint=exc.hint
            ) from None
        key = given or request_key(request.to_body())
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            if given:
                raise ValidationError(
                    f"item {position}: id {given!r} is used twice; ids name items, so each "
                    "must be unique within the batch"
                )
            key = f"{key}#{seen[key]}"
        loaded.append(BatchItem(key, position, request, (*base_tags, *tags)))
    return loaded


def _named(row: object) -> str:
    if isinstance(row, Mapping) and row.get("id") not in (None, ""):
        return f" (id {row['id']!r})"
    return ""


def _rows(items: object) -> Iterable[object]:
    if isinstance(items, (str, os.PathLike)) and _is_table_path(items):
        return _read_file(Path(items))
    if _is_dataframe(items):
        frame: Any = items
        return [dict(zip(frame.columns, values, strict=True)) for values in frame.itertuples(False)]
    if isinstance(items, (str, bytes, Mapping, ImageRequest)):
        raise ValidationError(
            f"batch items must be a list (of prompts, dicts or ImageRequests), a DataFrame, or "
            f"a .csv / .jsonl path; got a single {type(items).__name__}",
            hint="Wrap one prompt in a list: cometnb.batch(['a red fox'], name=...).",
        )
    if not isinstance(items, Iterable):
        raise ValidationError(
            f"batch items must be a list, a DataFrame or a .csv / .jsonl path; got "
            f"{type(items).__name__}"
        )
    return items


def _is_table_path(value: str | os.PathLike[str]) -> bool:
    text = os.fspath(value)
    return "\n" not in text and text.lower().endswith(_SUFFIXES)


def _is_dataframe(value: object) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "itertuples")


def _read_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ValidationError(f"batch input file {path} does not exist (or is not a file)")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if path.suffix.lower() == ".csv":
            return [{k: _cell(k, v) for k, v in row.items() if k} for row in csv.DictReader(handle)]
        rows = []
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                raise ValidationError(f"{path.name} line {number} is not valid JSON") from None
            rows.append(value if isinstance(value, dict) else {"prompt": value})
        return rows


def _cell(column: str, text: str | None) -> Any:
    """A CSV cell: empty means absent; an API field's text is JSON when it parses."""
    if text is None or text == "":
        return None
    if column in _TEXT_FIELDS or column not in _API_FIELDS:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse(
    row: object, defaults: Mapping[str, Any]
) -> tuple[ImageRequest, str | None, tuple[str, ...]]:
    """(request, the item's own id, its tags) for one row."""
    if isinstance(row, ImageRequest):
        missing = {k: v for k, v in defaults.items() if k not in row.to_body()}
        return (row.with_overrides(**missing) if missing else row), None, ()
    if isinstance(row, str):
        return ImageRequest.from_dict({**defaults, "prompt": row}), None, ()
    if not isinstance(row, Mapping):
        raise ValidationError(
            f"is a {type(row).__name__}; items are prompts, dicts or ImageRequests"
        )
    values = {str(k): _plain(v) for k, v in row.items()}
    values = {k: v for k, v in values.items() if v is not None}
    given = values.pop("id", None)
    tags = list(_tags(values.pop("tags", None)))
    fields = dict(defaults)
    for name, value in values.items():
        if name in _API_FIELDS:
            fields[name] = value
        else:
            tags.append(f"{name}={value}")
    if not isinstance(fields.get("prompt"), str) or not fields["prompt"].strip():
        raise ValidationError("has no prompt (a non-empty 'prompt' column or key)", field="prompt")
    return ImageRequest.from_dict(fields), (None if given is None else str(given)), tuple(tags)


def _plain(value: Any) -> Any:
    """numpy scalars to Python; NaN (pandas' empty cell) to None; 2.0 to 2."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):
            value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a pandas int column with gaps is float; no API field is
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    return tuple(str(t) for t in value)


# --- batch_recovery ----------------------------------------------------------------------------
# Where a batch's items stand after a run stopped, and which failures may have been billed.

ORIGIN = "batch:{name}/{key}"
# The errors of items whose request was in flight when a run stopped: no answer is known.
KILLED_IN_FLIGHT = (
    "in flight when an earlier run stopped (kill or restart): it may have been billed"
)
CANCELLED_IN_FLIGHT = "in flight when the run was interrupted: it may have been billed"
IN_FLIGHT = (KILLED_IN_FLIGHT, CANCELLED_IN_FLIGHT)
_IN_FLIGHT = BillingRisk.SENT_NO_ANSWER


def may_be_billed(error: CometError) -> bool:
    """True when the failed request may still have been billed (read timeout, a 5xx after
    sending, an unusable answer): such an item is not sent again without ``retry_billed``."""
    if error.billing is not None:
        return error.billing.may_be_billed
    return legacy_may_be_billed(error)


def legacy_may_be_billed(error: CometError | None, cost_usd: float | None = None) -> bool:
    """The guess for a failure stored without its :class:`BillingRisk` (a record or batch row
    written before issue 22): from the error's class, status and wording, or a cost the ledger
    kept above $0 (what it charged because the failure may have been billed)."""
    if (cost_usd or 0) > 0 or isinstance(error, ResponseError):
        return True
    if isinstance(error, APIError):
        if error.status is not None:
            return status_may_be_billed(error.status)
        return "read timeout" in error.message or "dropped after the request" in error.message
    return False


def halts_the_batch(error: CometError) -> bool:
    """A failure the next items would meet too: the account's quota or balance is spent
    (a 429 that waiting will not cure), or the key is missing, unusable or refused."""
    if isinstance(error, AuthenticationError):
        return True  # no key, an unusable one, or the server refused it (401 / 403)
    return isinstance(error, RateLimitError) and error.hint == QUOTA_HINT


def in_flight_before(state: ItemState | None) -> bool:
    return state is not None and state.state == "uncertain" and state.error in IN_FLIGHT


def cancelled_in_flight(states: dict[str, ItemState]) -> list[ItemState]:
    """Items an interrupt left ``uncertain`` in flight: their record may have landed since
    (a cancel while storing lets the store finish)."""
    return [s for s in states.values() if s.state == "uncertain" and s.error == CANCELLED_IN_FLIGHT]


def settle_in_flight(
    name: str, in_flight: Sequence[ItemState], history: History, store: BatchStore
) -> None:
    """Items whose request was in flight when a run stopped: done, failed or uncertain as their
    record in the history says; with no record, ``uncertain`` (the POST had left, so it may
    have been generated and billed)."""
    if not in_flight:
        return
    origins = {ORIGIN.format(name=name, key=s.key): s.key for s in in_flight}
    # The batch's records by tag (SQL over the tags column, not a load of every record),
    # oldest first, so the newest record of each item wins. A "cancelled" record says only
    # that the answer never came; a record the state already names is an earlier run's.
    found = {
        origins[r.origin]: r
        for r in history.find(tag=f"batch:{name}")
        if r.origin in origins and r.status != "cancelled"
    }
    for state in in_flight:
        record = found.get(state.key)
        if record is None or record.id == state.record_id:
            if state.state == "sending":
                store.mark(name, state.key, "uncertain", error=KILLED_IN_FLIGHT, billing=_IN_FLIGHT)
        elif record.status == "ok":
            store.mark(name, state.key, "done", record_id=record.id)
        else:
            error = record.to_generation().error
            risk = None if error is None else error.billing
            billed = legacy_may_be_billed(error, record.cost.usd) if risk is None else None
            if risk is not None:
                billed = risk.may_be_billed
            new: State = "uncertain" if billed else "failed"
            store.mark(
                name, state.key, new, record_id=record.id, error=_error_text(record), billing=risk
            )


def _error_text(record: Any) -> str:
    info = record.error_info or {}
    return str(info.get("message") or record.status)


# --- batch -------------------------------------------------------------------------------------
# The outcome of a resumable batch: :class:`Batch` (what is done, failed, uncertain, pending).


class Batch:
    """A named batch: its items in input order and where each one stands.

    ``done`` / ``failed`` are history :class:`Record` s (input order); ``uncertain`` are items
    whose request may have been billed without an image coming back (sent again only with
    ``retry_billed=True``); ``pending`` are items not sent yet (or sent and certainly not
    billed). ``results`` has one entry per item: its record, or ``None`` while pending.

    Example::

        >>> b = cometnb.batch(["a red fox", "an owl"], name="animals")  # doctest: +SKIP
        >>> b
        <Batch 'animals': 2 done, 0 failed, 0 uncertain, 0 pending of 2>
        >>> b.export("animals.html")  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str,
        items: Sequence[BatchItem],
        history: History,
        store: BatchStore,
        *,
        resent: Sequence[str] = (),
        notes: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.items = list(items)
        self.history = history
        self._store = store
        # Keys in flight when a run stopped (killed, restarted, interrupted), so uncertain,
        # and sent again by this call because retry_billed=True.
        self.resent_after_interrupt = list(resent)
        self.notes = list(notes)  # what the last run has to tell (e.g. the budget stopped it)
        self._states: dict[str, ItemState] = {}
        self.refresh()

    def refresh(self) -> Batch:
        """Read the items' states again (another process may be running the batch)."""
        self._states = self._store.states(self.name)
        return self

    def state(self, item: BatchItem | str) -> str:
        """``"pending"``, ``"sending"``, ``"done"``, ``"failed"`` or ``"uncertain"``."""
        key = item if isinstance(item, str) else item.key
        found = self._states.get(key)
        return found.state if found else "pending"

    def _record(self, item: BatchItem) -> Record | None:
        found = self._states.get(item.key)
        if found is None or found.record_id is None:
            return None
        return self.history.get(found.record_id)

    def _with(self, *states: str) -> list[BatchItem]:
        return [item for item in self.items if self.state(item) in states]

    # --- the public view ---------------------------------------------------------------------

    @property
    def done(self) -> list[Record]:
        """Records of the items that produced images, in input order."""
        return [r for r in map(self._record, self._with("done")) if r is not None]

    @property
    def failed(self) -> list[Record]:
        """Records of the items that failed (uncertain ones included), in input order."""
        found = map(self._record, self._with("failed", "uncertain"))
        return [r for r in found if r is not None]

    @property
    def uncertain(self) -> list[BatchItem]:
        """Items that may have been billed without an image (read timeout, 5xx after sending,
        or in flight when a run stopped); sent again only with ``retry_billed=True``."""
        return self._with("uncertain")

    @property
    def pending(self) -> list[BatchItem]:
        """Items not sent yet (waiting for their turn included), or to send again (failures
        that were certainly not billed); ``sending`` ones are on the wire in a running call."""
        return self._with("pending", "sending")

    @property
    def results(self) -> list[Record | None]:
        """One entry per item in input order: its record, or ``None`` while pending."""
        return [self._record(item) for item in self.items]

    @property
    def cost(self) -> Cost:
        """What the done items cost, like ``Generation.cost``: ``.usd`` is their records' sum,
        ``None`` when one of them has no price; ``.estimated`` when one is an estimate."""
        total = Cost(0.0, False, "nothing done yet")
        for record in self.done:
            total = total + record.cost
        return total

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write the done items like ``History.export`` (``.html``, ``.zip`` or ``.jsonl``)."""
        return self.history.export(path, records=self.done)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per item: position, key, state, prompt, model, record id, error, image path,
        tags (needs pandas: ``pip install cometnb[pandas]``)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is in the dev extra
            from cometnb._core.errors import CometError

            raise CometError(
                "Batch.to_dataframe() needs pandas", hint="pip install 'cometnb[pandas]'"
            ) from None
        frame: pd.DataFrame = pd.DataFrame([self._row(item) for item in self.items])
        return frame

    def _row(self, item: BatchItem) -> dict[str, Any]:
        record = self._record(item)
        found = self._states.get(item.key)
        image = record.images[0].path if record is not None and record.images else None
        return {
            "position": item.position,
            "key": item.key,
            "state": self.state(item),
            "prompt": item.request.prompt,
            "model": item.request.model,
            "record_id": found.record_id if found else None,
            "error": found.error if found else None,
            "image_path": str(image) if image is not None else None,
            "tags": list(item.tags),
        }

    def counts(self) -> dict[str, int]:
        """How many items are in each state."""
        counts = dict.fromkeys(("done", "failed", "uncertain", "pending"), 0)
        for item in self.items:
            state = self.state(item)
            counts["pending" if state == "sending" else state] += 1
        return counts

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        c = self.counts()
        note = f"; {billed_note(c['uncertain'])}" if c["uncertain"] else ""
        return (
            f"<Batch {self.name!r}: {c['done']} done, {c['failed']} failed, "
            f"{c['uncertain']} uncertain, {c['pending']} pending of {len(self.items)}{note}>"
        )


def billed_note(uncertain: int) -> str:
    """The short note on items that may have been billed (the repr and the progress bar's)."""
    items, them = ("1 item", "it") if uncertain == 1 else (f"{uncertain} items", "them")
    return f"{items} may have been billed without an image; retry_billed=True sends {them} again"
