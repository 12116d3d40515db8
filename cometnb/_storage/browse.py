"""A history folder opened for reading only, a page at a time: what the Jupyter sidebar shows.

:class:`Browser` never writes: its index is opened ``mode=ro`` (``Index(read_only=True)``: no
file, migration or index is ever created), it builds no preview and it tags nothing. A kernel
may write the folder meanwhile (WAL): each question is one read transaction, so a page and its
``total`` agree, and the next question sees the new rows. The only files SQLite itself may add
beside the index are its ``-wal`` / ``-shm`` coordination files, as for any reader.

A page is :func:`~cometnb._storage.queries.narrow` (``History.find``'s own rule) plus date and
cost bounds, newest first. Filters SQL answers exactly (model, status, tag, kind, dates, a
stored cost) cost two indexed queries; a text search, or a cost bound over records that
stored no cost, reads the narrowed rows' prompts (and only the documents that need it) and
checks them with ``find``'s own Python checks before counting, so a page is always a slice of
``History.find``'s answer, reversed.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cometnb._storage.index import COLUMNS, SPEND_KIND, SPEND_USD, Index
from cometnb._storage.queries import HAS_REVISED, mentions, narrow, record_by_id
from cometnb._storage.records import Record
from cometnb._storage.sources import lineage_of

__all__ = ["Browser", "Facets", "Page", "RecordFilter", "Revision"]

# The record's kind as Record.kind reads it ("generate" when the document has none).
_KIND = "COALESCE(NULLIF(json_extract(doc, '$.kind'), ''), 'generate')"
_NEWEST_FIRST = "id DESC"


@dataclass(frozen=True)
class RecordFilter:
    """What a page shows: ``History.find``'s filters plus a time range (``since`` inclusive,
    ``until`` exclusive, Unix timestamps) and a cost range in USD (both ends inclusive; a
    record whose cost is unknown is outside every cost range)."""

    text: str | None = None
    model: str | None = None
    tag: str | None = None
    status: str | None = None
    kind: str | None = None
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
    kinds: dict[str, int] = field(default_factory=dict)
    first: float | None = None  # oldest and newest record times
    last: float | None = None


class Browser:
    """A history folder read a page at a time, without ever writing to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index = Index(root, read_only=True)
        self._identity: tuple[int, int] | None = None

    @property
    def exists(self) -> bool:
        return self._index.path.is_file()

    # --- pages -----------------------------------------------------------------------------

    def page(self, filt: RecordFilter, offset: int = 0, limit: int = 50) -> Page:
        """Records ``offset … offset + limit`` of those matching ``filt``, newest first."""
        where, params, needle = self._where(filt)
        python_cost = filt.bounds_cost
        self._follow_replacement()
        with self._index.reading() as conn:
            if conn is None:
                return Page(0, [])
            if needle is None and not python_cost:
                total = conn.execute(f"SELECT COUNT(*) FROM records WHERE {where}", params)
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM records WHERE {where} "
                    f"ORDER BY {_NEWEST_FIRST} LIMIT ? OFFSET ?",
                    (*params, limit, offset),
                ).fetchall()
                return Page(int(total.fetchone()[0]), self._records(rows))
            ids = self._checked_ids(conn, where, params, needle, filt)
            chosen = ids[offset : offset + limit]
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM records WHERE id IN (SELECT value FROM json_each(?)) "
                f"ORDER BY {_NEWEST_FIRST}",
                (json.dumps(chosen),),
            ).fetchall()
            return Page(len(ids), self._records(rows))

    def _where(self, filt: RecordFilter) -> tuple[str, tuple[Any, ...], str | None]:
        narrowed = narrow(
            self._index, model=filt.model, tag=filt.tag, status=filt.status, text=filt.text
        )
        clauses, params = [narrowed.where], list(narrowed.params)
        if filt.kind is not None:
            clauses.append(f"{_KIND} = ?")
            params.append(filt.kind)
        if filt.since is not None:
            clauses.append("created_at >= ?")
            params.append(filt.since)
        if filt.until is not None:
            clauses.append("created_at < ?")
            params.append(filt.until)
        if filt.bounds_cost:
            # Stored numeric costs are judged here; records SQL cannot price (kind 3) are
            # read and priced in Python (_checked_ids); unknown costs (kind 0) never fit.
            low = -float("inf") if filt.min_cost is None else filt.min_cost
            high = float("inf") if filt.max_cost is None else filt.max_cost
            clauses.append(
                f"((({SPEND_KIND}) IN (1, 2) AND ({SPEND_USD}) BETWEEN ? AND ?) "
                f"OR ({SPEND_KIND}) = 3)"
            )
            params += [low, high]
        return " AND ".join(clauses), tuple(params), narrowed.needle

    def _checked_ids(
        self,
        conn: sqlite3.Connection,
        where: str,
        params: tuple[Any, ...],
        needle: str | None,
        filt: RecordFilter,
    ) -> list[str]:
        """Ids of the narrowed rows that really match, newest first. Only the documents a
        check reads are fetched: those with a revised prompt (text) or no stored cost."""
        wanted = []
        if needle is not None:
            wanted.append(HAS_REVISED)
        if filt.bounds_cost:
            wanted.append(f"({SPEND_KIND}) = 3")
        doc = f"CASE WHEN {' OR '.join(wanted)} THEN doc ELSE '{{}}' END"
        columns = f"id, seq, created_at, prompt, model, status, tags, {doc}"
        cur = conn.execute(
            f"SELECT {columns} FROM records WHERE {where} ORDER BY {_NEWEST_FIRST}", params
        )
        ids = []
        for row in cur:
            rec = Record._from_row(row, self.root)
            if needle is not None and not mentions(rec, needle):
                continue
            if filt.bounds_cost and row[7] != "{}" and not filt.cost_fits(rec.cost.usd):
                continue
            ids.append(rec.id)
        return ids

    def _records(self, rows: list[Any]) -> list[Record]:
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
        """Models, tags, statuses and kinds present (with counts), and the time span."""
        self._follow_replacement()
        with self._index.reading() as conn:
            if conn is None:
                return Facets()
            models = dict(conn.execute("SELECT model, COUNT(*) FROM records GROUP BY model"))
            statuses = dict(conn.execute("SELECT status, COUNT(*) FROM records GROUP BY status"))
            kinds = dict(conn.execute(f"SELECT {_KIND}, COUNT(*) FROM records GROUP BY 1"))
            tags = dict(
                conn.execute(
                    "SELECT value, COUNT(*) FROM records, json_each(records.tags) GROUP BY value"
                )
            )
            first, last = conn.execute(
                "SELECT MIN(created_at), MAX(created_at) FROM records"
            ).fetchone()
        return Facets(models, tags, statuses, kinds, first, last)

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
