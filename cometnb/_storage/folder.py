"""The history: every generation, durable across kernel restarts, searchable and exportable.

A history folder holds ``index.sqlite3`` (one row per request, see ``index``), ``images/``
(the originals exactly as the API returned them) and ``previews/`` (small copies for inline
display). :class:`History` reads, searches and tags it; it writes (files first, then the row
that names them, and the writability check before anything is sent) as the
``writer.HistoryWriter`` it extends.

Records are loaded with one query and kept as small objects; image bytes are read only when
asked for. Several kernels can append to one folder at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from cometnb._core.billing import BillingRisk
from cometnb._core.errors import CometError, ValidationError
from cometnb._core.generations import Generation
from cometnb._core.protocols import Runner
from cometnb._core.session import current, new_runner, render
from cometnb._core.settings import resolve_history_dir
from cometnb._storage import queries
from cometnb._storage import repair as _repair
from cometnb._storage.batches import DB_NAME as BATCHES_DB
from cometnb._storage.batches import REQUESTS, BatchStore, ItemState
from cometnb._storage.index import DB_NAME, Index
from cometnb._storage.records import Comparison, Record, tags_json
from cometnb._storage.repair import RepairReport
from cometnb._storage.sources import lineage_of
from cometnb._storage.spend import By, SpendTable, spend_from_index
from cometnb._storage.writer import HistoryWriter

log = logging.getLogger("cometnb")

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["History", "history"]


# --- the history -----------------------------------------------------------------------------

RecordRef = Record | str | int


class History(HistoryWriter):
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
        folder = Path(os.path.abspath(resolve_history_dir(path)))
        super().__init__(folder, Index(folder))  # sets ``self.path``
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._by_id: dict[str, Record] = {}
        self._seq = 0
        self._warn_if_index_lost()

    def _warn_if_index_lost(self) -> None:
        """Say so when the index lists nothing while record documents exist (a zero-byte or
        replaced ``index.sqlite3`` would otherwise hide every record without a word)."""
        index = self.path / DB_NAME
        records = self.path / _repair.RECORDS
        try:
            if not index.exists() or not any(records.glob("*.json")):
                return
            empty = self._index.count() == 0
        except Exception:  # unreadable: the same symptom, and repair() is the same answer
            empty = True
        if empty:
            log.warning(
                "cometnb: the history index %s lists no records, but %s holds record "
                "documents; run cometnb.History(%r).repair() to rebuild the index from them.",
                index,
                records,
                str(self.path),
            )

    # --- reading ---------------------------------------------------------------------------

    def _sync(self) -> list[str]:
        """Catch up with rows added or changed (by any process) since the last look."""
        with self._lock:
            rows = self._index.rows_after(self._seq)
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

    def revision(self) -> tuple[int, ...]:
        """A token that changes when any process writes to this history (equal tokens: nothing
        new to read). A few stat calls and two tiny queries, cheap enough to poll."""
        return self._index.revision()

    def __len__(self) -> int:
        return self._index.count()  # one query: no record is loaded

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            with self._lock:
                ids = self._sync()
                return [self._by_id[i] for i in ids[index]]
        found = queries.record_at(self._index, self.path, index)  # h[-1]: one indexed query
        if found is None:
            raise IndexError(f"history index {index} out of range ({len(self)} records)")
        return found

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __contains__(self, item: object) -> bool:
        rid = item.id if isinstance(item, Record) else item
        return isinstance(rid, str) and self.get(rid) is not None

    def get(self, record_id: str | Record) -> Record | None:
        """The record with this id (``None`` when there is none)."""
        rid = record_id.id if isinstance(record_id, Record) else record_id
        return queries.record_by_id(self._index, self.path, rid)

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
        kind: str | None = None,
    ) -> list[Record]:
        """Records matching every given filter, oldest → newest.

        ``text`` is a case-insensitive substring of the prompt or a revised prompt; ``model``,
        ``tag``, ``status`` and ``kind`` (``"edit"`` or ``"generate"``) must match exactly.
        """
        return queries.find_records(
            self._index, self.path, text=text, model=model, tag=tag, status=status, kind=kind
        )

    def compare(self, *records: RecordRef) -> Comparison:
        """Records side by side (ids, indexes or Records); differing settings highlighted."""
        if not records:
            raise ValidationError("compare() needs at least one record (an id, index or Record)")
        return Comparison([self._resolve(r) for r in records])

    def lineage(self, record: RecordRef) -> list[Record]:
        """``record``'s chain of ancestors by ``parent``, oldest first, ending with ``record``.

        Example::

            >>> [r.prompt for r in h.lineage(h[-1])]  # doctest: +SKIP
            ['a lighthouse', 'the same scene at night', 'a stormy sky']
        """
        return lineage_of(self._resolve(record), self.get)

    def children(self, record: RecordRef) -> list[Record]:
        """The records made by editing ``record``'s images (their ``parent`` is it)."""
        rec = self._resolve(record)
        return [found for rid in self._index.children(rec.id) if (found := self.get(rid))]

    # --- changing --------------------------------------------------------------------------

    def tag(self, record: RecordRef, *tags: str) -> Record:
        """Add tags to a record (stored at once); returns the updated record."""
        return self._retag(record, lambda old: tags_json((*old, *tags)))

    def untag(self, record: RecordRef, *tags: str) -> Record:
        """Remove tags from a record; returns the updated record."""
        return self._retag(record, lambda old: tags_json(t for t in old if t not in tags))

    def _retag(self, record: RecordRef, change: Callable[[list[str]], str]) -> Record:
        # Read and write in one transaction: another process tagging meanwhile keeps its tags.
        rec = self._resolve(record)
        row = self._index.update_tags(rec.id, change)
        if row is not None:
            with contextlib.suppress(OSError):  # the record document follows (for a rebuild)
                _repair.write_document(self.path, _repair.document(row))
        return self._resolve(rec.id)  # read back as stored (one query)

    def repair(self, *, dry_run: bool = False) -> RepairReport:
        """Check this history and fix what can be fixed; returns a report of what it did.

        A damaged index is moved aside and rebuilt from the record documents (``records/``),
        records whose document is on disk but whose row is missing are put back, image files
        no record names (a process killed while saving) are adopted as records tagged
        ``adopted``, and abandoned temporary files are removed. ``dry_run=True`` only reports.
        """
        with self._lock:
            report = _repair.repair(self.path, self._index, dry_run=dry_run)
            report.in_flight = self._record_orphans(dry_run)
            self._ids, self._by_id, self._seq = [], {}, 0  # reload everything next time
            return report

    def _record_orphans(self, dry_run: bool) -> list[str]:
        """Requests a killed process left on the wire (their ``sending`` row outlived it): each
        becomes an error record that may have been billed. Returns the new record ids."""
        if not (self.path / BATCHES_DB).exists():
            return []
        store = BatchStore(self.path)
        made: list[str] = []
        try:
            for state in store.states(REQUESTS).values():
                note = _orphan_note(state)
                if note is None:
                    continue
                if dry_run:
                    made.append(state.key)
                    continue
                error = CometError(KILLED_IN_FLIGHT, hint=KILLED_HINT)
                error.billing = BillingRisk.SENT_NO_ANSWER
                record = self.record_failure(note, error, elapsed_s=0.0)
                store.forget(REQUESTS, [state.key])
                made.append(record.id)
        finally:
            store.close()
        return made

    def rerun(
        self, record: RecordRef, *, client: Runner | None = None, **overrides: Any
    ) -> Generation:
        """Send a recorded request again (with ``overrides``); the new record names its origin.

        ``client`` is a ``cometnb.Client`` to use (default: a new one storing into this
        history). ``None`` as an override removes a field.
        """
        rec = self._resolve(record)
        request = rec.to_request().with_overrides(**overrides)  # an edit's inputs included
        if client is not None:
            return client.run(request, origin=rec.id)
        own: Runner = new_runner(self)  # the default client, injected by the package root
        try:
            return own.run(request, origin=rec.id)
        finally:
            own.close()

    # --- output ----------------------------------------------------------------------------

    def export(self, path: str | os.PathLike[str], records: Iterable[Record] | None = None) -> Path:
        """Write the history (or ``records``) to ``path``; the format follows the suffix.

        ``.html``: one self-contained gallery file (previews embedded, opens offline);
        ``.zip``: the original image files plus ``records.jsonl``; ``.jsonl``: metadata only.
        """
        from cometnb._storage.export import export

        chosen = self.records() if records is None else list(records)
        return export(chosen, Path(path), title=f"cometnb history: {self.path.name}")

    def to_dataframe(self) -> pd.DataFrame:
        """One row per record (needs pandas: ``pip install cometnb[pandas]``)."""
        from cometnb._storage.export import to_dataframe

        return to_dataframe(self.records())

    def spend(self, since: Any = None, by: By | None = None) -> float | SpendTable:
        """USD spent: the total, or a table by ``"model"``, ``"day"`` (UTC) or ``"tag"``.

        Each record counts at the cost it stored when it ran; costs that are unknown (a model
        without a price) are left out of the figures and counted in the table's ``unknown``.
        ``since`` (a datetime, date, ISO string or timestamp) keeps only later records.

        Example::

            >>> h.spend(), h.spend(by="model")  # doctest: +SKIP
            (0.2256, {'dall-e-3': 0.12, 'gpt-image-2': 0.0528, 'gpt-image-1-mini': 0.0528})
        """
        # SQL over the spend index: no Record is built (the same answer as
        # spend.spend(self.records(), since, by)).
        return spend_from_index(self._index, since, by)

    def close(self) -> None:
        """Close the index connection (reopened automatically when used again)."""
        self._index.close()

    def _repr_html_(self) -> str:
        return render("history", self.records())

    def __repr__(self) -> str:
        # Never raises: a repr is what a traceback or the debugger shows of a broken history.
        try:
            count = f"{len(self)} records"
        except Exception:  # any failure reading the index
            count = "index unreadable: run .repair()"
        return f"<History {self.path} ({count})>"


KILLED_IN_FLIGHT = (
    "The request was on the wire when its process stopped (kill or restart); no answer was "
    "recorded."
)
KILLED_HINT = "It may have been billed; check the account's usage before sending it again."


def _orphan_note(state: ItemState) -> dict[str, Any] | None:
    """The request a row in flight names, when the process that sent it is gone."""
    try:
        note = json.loads(state.error or "")
        pid, host, request = note["pid"], note["host"], note["request"]
    except (ValueError, TypeError, KeyError):
        return None
    if state.state != "sending" or not isinstance(request, dict):
        return None
    if host == socket.gethostname() and isinstance(pid, int) and _alive(pid):
        return None  # still running: its request is really in flight
    return request


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def history(path: str | os.PathLike[str] | None = None) -> History:
    """The active :class:`History` (``CometImg.history_dir``, ``$COMETNB_HISTORY`` or
    ``./cometnb-history``), or the one at ``path``; one instance per folder per session.

    Example::

        >>> import cometnb
        >>> h = cometnb.history()  # doctest: +SKIP
        >>> h[-1]  # the latest record  # doctest: +SKIP
    """
    key = os.path.abspath(resolve_history_dir(path))
    session = current()
    with session.lock:
        found = session.histories.get(key)
        if found is None:
            found = session.histories[key] = History(key)
        return found
