"""A history folder opened for reading only, a page at a time: what the Jupyter sidebar shows.

:class:`Browser` never writes: its index is opened ``mode=ro`` (``Index(read_only=True)``: no
file, migration or index is ever created), it builds no preview and it tags nothing. A kernel
may write the folder meanwhile (WAL): each question is one read transaction, so a page and its
``total`` agree, and the next question sees the new rows. The only files SQLite itself may add
beside the index are its ``-wal`` / ``-shm`` coordination files, as for any reader.

A page is ``History.find``'s answer (the same filters, with its own narrowing rule
:func:`~cometnb._storage.queries.narrow` and check :func:`~cometnb._storage.queries.mentions`)
within date and cost bounds, newest first, as one ``WHERE`` that SQL answers exactly: a
``COUNT`` and a ``LIMIT`` / ``OFFSET`` over ids (only the page's rows are read whole). What SQL
cannot judge as Python does is judged first, in Python, over the few rows concerned, and
enters the ``WHERE`` as a list of ids: revised prompts (the text is in the JSON document),
non-ASCII text (``LIKE`` folds ASCII case only) and records that stored no cost (priced now,
as ``Record.cost`` prices them). Date and cost bounds read the ``records_spend`` index.

Example::

    >>> b = Browser(Path("cometnb-history"))  # doctest: +SKIP
    >>> page = b.page(RecordFilter(text="fox", status="ok"), offset=0, limit=50)  # doctest: +SKIP
    >>> page.total, page.records[0].prompt  # doctest: +SKIP
    (12, 'a red fox in snow')
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cometnb._storage.index import COLUMNS, SPEND_KIND, SPEND_USD, Index
from cometnb._storage.queries import (
    DOC_LIKE,
    HAS_REVISED,
    PROMPT_LIKE,
    doc_pattern,
    mentions,
    narrow,
    prompt_pattern,
    record_by_id,
)
from cometnb._storage.records import Record
from cometnb._storage.sources import lineage_of

__all__ = ["Browser", "Facets", "Page", "RecordFilter", "Revision"]

_NEWEST_FIRST = "id DESC"
_ANY = -float("inf")
_IDS = "id IN (SELECT value FROM json_each(?))"


@dataclass(frozen=True)
class RecordFilter:
    """What a page shows: ``History.find``'s filters (text, model, tag, status) plus a time
    range (``since`` inclusive, ``until`` exclusive, Unix timestamps) and a cost range in USD
    (both ends inclusive; a record whose cost is unknown is outside every cost range)."""

    text: str | None = None
    model: str | None = None
    tag: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    min_cost: float | None = None
    max_cost: float | None = None

    @property
    def bounds_cost(self) -> bool:
        return self.min_cost is not None or self.max_cost is not None

    def cost_fits(self, usd: float | None) -> bool:
        """The one cost-range rule (SQL's clause says the same for stored costs)."""
        if usd is None:
            return False
        low_ok = self.min_cost is None or usd >= self.min_cost
        return low_ok and (self.max_cost is None or usd <= self.max_cost)


@dataclass(frozen=True)
class Page:
    """``records`` (newest first) of the ``total`` matching the filter."""

    total: int
    records: list[Record]


@dataclass(frozen=True)
class Revision:
    """Changes whenever a record is added or re-tagged: ``count``, the highest change number
    (``seq``) and the newest record id. Cheap enough to poll."""

    count: int
    seq: int
    newest: str | None

    @property
    def token(self) -> str:
        return f"{self.count}-{self.seq}"


@dataclass(frozen=True)
class Facets:
    """The choices a filter can offer, with how many records each has."""

    models: dict[str, int] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    first: float | None = None  # oldest and newest record times
    last: float | None = None


class Browser:
    """A history folder read a page at a time, without ever writing to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index = Index(root, read_only=True)
        self._identity: tuple[int, int] | None = None
        self._prices: dict[str, float | None] = {}  # records priced in Python, by id

    # --- pages -----------------------------------------------------------------------------

    def page(self, filt: RecordFilter, offset: int = 0, limit: int = 50) -> Page:
        """Records ``offset … offset + limit`` of those matching ``filt``, newest first."""
        self._follow_replacement()
        with self._index.reading() as conn:
            if conn is None:
                return Page(0, [])
            where, params = self._where(conn, filt)
            total = conn.execute(f"SELECT COUNT(*) FROM records WHERE {where}", params)
            # Ids are sorted, not whole rows: a date range read through its index sorts its
            # ids only, and only the page's rows are read in full.
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM records WHERE id IN (SELECT id FROM records WHERE "
                f"{where} ORDER BY {_NEWEST_FIRST} LIMIT ? OFFSET ?) ORDER BY {_NEWEST_FIRST}",
                (*params, limit, offset),
            ).fetchall()
            return Page(int(total.fetchone()[0]), self._records(rows))

    def _where(self, conn: sqlite3.Connection, filt: RecordFilter) -> tuple[str, tuple[Any, ...]]:
        narrowed = narrow(self._index, model=filt.model, tag=filt.tag, status=filt.status)
        clauses, params = [narrowed.where], list(narrowed.params)
        needle = filt.text.casefold() if filt.text else None  # as find() reads its text
        if needle is not None and needle.isascii():
            # The prompt's LIKE is exact for an ASCII needle; revised prompts are checked.
            clauses.append(f"({PROMPT_LIKE} OR {_IDS})")
            params += [prompt_pattern(needle), json.dumps(self._revised_matches(conn, needle))]
        elif needle is not None:
            clauses.append(_IDS)
            params.append(json.dumps(self._text_matches(conn, needle)))
        if filt.since is not None or filt.bounds_cost:
            # A lower time bound lets SQLite read costs from records_spend, not the documents.
            clauses.append("created_at >= ?")
            params.append(_ANY if filt.since is None else filt.since)
        if filt.until is not None:
            clauses.append("created_at < ?")
            params.append(filt.until)
        if filt.bounds_cost:
            low = _ANY if filt.min_cost is None else filt.min_cost
            high = -_ANY if filt.max_cost is None else filt.max_cost
            clauses.append(
                f"((({SPEND_KIND}) IN (1, 2) AND ({SPEND_USD}) BETWEEN ? AND ?) OR {_IDS})"
            )
            params += [low, high, json.dumps(self._priced_matches(conn, filt))]
        return " AND ".join(clauses), tuple(params)

    def _revised_matches(self, conn: sqlite3.Connection, needle: str) -> list[str]:
        """Records whose prompt does not match but whose revised prompt may: find's check."""
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM records WHERE {HAS_REVISED} AND {DOC_LIKE} "
            f"AND NOT {PROMPT_LIKE}",
            (doc_pattern(needle), prompt_pattern(needle)),
        )
        return [rec.id for rec in self._records(rows) if mentions(rec, needle)]

    def _text_matches(self, conn: sqlite3.Connection, needle: str) -> list[str]:
        """A non-ASCII needle: every prompt (from its small index), then revised prompts."""
        found = [
            rid
            for rid, prompt in conn.execute("SELECT id, prompt FROM records")
            if needle in prompt.casefold()
        ]
        rows = conn.execute(f"SELECT {COLUMNS} FROM records WHERE {HAS_REVISED}")
        return found + [rec.id for rec in self._records(rows) if mentions(rec, needle)]

    def _priced_matches(self, conn: sqlite3.Connection, filt: RecordFilter) -> list[str]:
        """Records SQL cannot price (no stored cost, odd JSON) priced as Record.cost does;
        each once per browser (a record's price does not change, and an old history may be
        all such records)."""
        ids = [
            rid
            for (rid,) in conn.execute(
                f"SELECT id FROM records WHERE created_at >= ? AND ({SPEND_KIND}) = 3", (_ANY,)
            )
        ]
        new = [rid for rid in ids if rid not in self._prices]
        if new:
            rows = conn.execute(f"SELECT {COLUMNS} FROM records WHERE {_IDS}", (json.dumps(new),))
            self._prices.update((rec.id, rec.cost.usd) for rec in self._records(rows))
        return [rid for rid in ids if filt.cost_fits(self._prices.get(rid))]

    def _records(self, rows: Iterable[Any]) -> list[Record]:
        return [Record._from_row(row, self.root) for row in rows]

    # --- one record ------------------------------------------------------------------------

    def get(self, record_id: str) -> Record | None:
        """The record with this id, or ``None``."""
        self._follow_replacement()
        return record_by_id(self._index, self.root, record_id)

    def lineage(self, rec: Record) -> list[Record]:
        """``rec``'s ancestors by ``parent``, oldest first, ending with ``rec``."""
        return lineage_of(rec, self._getter())

    def children(self, rec: Record) -> list[str]:
        """Ids of the records that edited ``rec``'s images."""
        return self._index.children(rec.id)

    def _getter(self) -> Callable[[str], Record | None]:
        return lambda rid: record_by_id(self._index, self.root, rid)

    # --- summaries -------------------------------------------------------------------------

    def revision(self) -> Revision:
        """How many records, the last change number and the newest id (three indexed reads)."""
        self._follow_replacement()
        with self._index.reading() as conn:
            if conn is None:
                return Revision(0, 0, None)
            count, seq, newest = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0), MAX(id) FROM records"
            ).fetchone()
        return Revision(int(count), int(seq), newest)

    def facets(self) -> Facets:
        """Models, tags and statuses present (with counts), and the time span."""
        self._follow_replacement()
        with self._index.reading() as conn:
            if conn is None:
                return Facets()
            models = dict(conn.execute("SELECT model, COUNT(*) FROM records GROUP BY model"))
            statuses = dict(conn.execute("SELECT status, COUNT(*) FROM records GROUP BY status"))
            tags = dict(
                conn.execute(
                    "SELECT value, COUNT(*) FROM records, json_each(records.tags) GROUP BY value"
                )
            )
            first, last = conn.execute(
                "SELECT MIN(created_at), MAX(created_at) FROM records"
            ).fetchone()
        return Facets(models, tags, statuses, first, last)

    def close(self) -> None:
        self._index.close()

    def _follow_replacement(self) -> None:
        """Reopen when the index file was replaced (``History.repair`` rebuilds it aside)."""
        try:
            st = os.stat(self._index.path)
        except OSError:
            self._index.close()
            self._identity = None
            return
        identity = (st.st_dev, st.st_ino)
        if identity != self._identity:
            self._index.close()
            self._identity = identity
