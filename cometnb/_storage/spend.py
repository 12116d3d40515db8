"""The ledger a history keeps: each record's cost, and ``History.spend(since, by)``.

A record stores its cost when it is written (``doc["cost"]``: USD, estimated or not, the basis
and the price table's name and date), so a later price change does not rewrite history. A
record written before costs were kept is priced with today's table and marked estimated.

Sums are exact: each cost is counted in whole nano-dollars (``_core.prices.to_nanos``) and the
integers added, so ``h.spend()`` is ``0.51842``, never ``0.5184200000000001``, and the SQL and
Python answers are equal, not merely close. Views show spend to the cent (``format_spend``).

``History.spend(since, by)`` answered by SQLite, not by loading every record.

The figures come from the small ``records_spend`` index (``Index.SPEND_INDEX``: time, model,
tags and two values of each record's stored cost), not from the documents: a total is one
aggregate over a range of it, a table one ``GROUP BY`` over a subquery reading that range
(SQLite 3.40 recomputes indexed expressions from the documents in a ``GROUP BY`` of its own).
The few records SQL cannot judge as Python does (no stored cost: an older record, priced with
today's table; odd JSON types) are read and priced in Python, like records made before 1970
(their day is computed in Python). The answer is :func:`spend`'s on ``h.records()``:
same rows in the same order, counts, unknown, estimated and requests, and the same figures:
both add each cost as whole nano-dollars (``_NANOS``, the SQL twin of ``cost.to_nanos``), so
the order of addition cannot change a bit of the answer. This holds for
the documents cometnb writes (``json.dumps`` never repeats a key); in a hand-edited document
that repeats one, SQLite reads the first value and Python's ``json`` the last.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cometnb._core.prices import (
    NANOS_PER_USD,
    Cost,
    failure_cost,
    format_spend,
    from_nanos,
    to_nanos,
)
from cometnb._storage.index import SPEND_KIND, SPEND_USD, Index
from cometnb._storage.records import record_cost

__all__ = [
    "SpendTable",
    "as_timestamp",
    "cost_of_failure",
    "spend",
    "spend_from_index",
    "spend_keys",
    "spend_start",
    "tag_keys",
]


class Record(Protocol):
    """What :func:`spend` reads of a record (``cometnb.Record`` has it; no import, no cycle)."""

    @property
    def cost(self) -> Cost: ...
    @property
    def created_at(self) -> _dt.datetime: ...

    model: str
    timestamp: float
    tags: tuple[str, ...]


By = Literal["model", "day", "tag"]
UNTAGGED = "(untagged)"


def cost_of_failure(body: Mapping[str, Any], error: BaseException) -> Cost:
    """What a failed request cost: $0 when refused, its estimate when it may have been billed."""
    billed = getattr(error, "may_be_billed", None)
    status = getattr(error, "status", None)
    return failure_cost(body, type(error).__name__, status, may_be_billed=billed)


class SpendTable(dict[str, float]):
    """USD spent per model, day or tag (``h.spend(by=...)``), largest first.

    ``counts`` holds how many requests each row has, ``unknown`` how many of them had no price
    (not in the figure: a row whose every request is of unknown cost is 0.0 here and shows as
    "unknown"), ``estimated`` how many were estimated. :attr:`total` counts each record once,
    so it equals ``h.spend()``; by tag, rows may overlap (a record with two tags is in both),
    so they can add up to more than the total. Figures are exact sums of whole nano-dollars.
    """

    def __init__(self, by: str) -> None:
        super().__init__()
        self.by = by
        self.counts: dict[str, int] = {}
        self.unknown: dict[str, int] = {}
        self.estimated: dict[str, int] = {}
        self._nanos: dict[str, int] = {}
        self._total: int | None = None  # nano-dollars, each record once (set by _finish)
        self.requests: int | None = None

    @property
    def total(self) -> float:
        """What the records cost, each counted once (``h.spend()`` for the same records)."""
        if self._total is not None:
            return from_nanos(self._total)
        return from_nanos(sum(self._nanos.values()))

    @property
    def overlaps(self) -> bool:
        """True when some record is in more than one row (by tag, with two tags)."""
        return self.requests is not None and sum(self.counts.values()) > self.requests

    @property
    def unknown_total(self) -> int:
        """How many requests (each counted once by model or day) had no price."""
        return sum(self.unknown.values())

    def _add(self, key: str, cost: Cost) -> None:
        unknown = cost.usd is None
        nanos = 0 if cost.usd is None else to_nanos(cost.usd)
        self._merge(key, nanos, 1, int(unknown), int(not unknown and cost.estimated))

    def _merge(self, key: str, nanos: int, count: int, unknown: int, estimated: int) -> None:
        """Add ``count`` requests costing ``nanos`` nano-dollars in all to row ``key``
        (``unknown`` of them without a price, ``estimated`` of the others estimated)."""
        self.counts[key] = self.counts.get(key, 0) + count
        self._nanos[key] = self._nanos.get(key, 0) + nanos
        self[key] = from_nanos(self._nanos[key])
        if unknown:
            self.unknown[key] = self.unknown.get(key, 0) + unknown
        if estimated:
            self.estimated[key] = self.estimated.get(key, 0) + estimated

    def _finish(self, total_nanos: int, requests: int) -> SpendTable:
        """Order the rows largest first (ties by name) and set :attr:`total` and ``requests``."""
        ordered = sorted(self._nanos.items(), key=lambda kv: (-kv[1], kv[0]))
        self.clear()
        self.update((k, from_nanos(v)) for k, v in ordered)
        for counts in (self.counts, self.unknown, self.estimated, self._nanos):
            kept = {k: counts[k] for k in self if k in counts}
            counts.clear()
            counts.update(kept)
        self._total, self.requests = total_nanos, requests
        return self

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{self._figure(k)}</td>"
            f"<td style='text-align:right'>{self.counts.get(k, 0)}</td>"
            f"<td>{self._note(k)}</td></tr>"
            for k in self
        )
        requests = self.requests if self.requests is not None else sum(self.counts.values())
        notes = []
        if self.unknown and self.by != "tag":
            count = self.unknown_total
            notes.append(f"excludes {count} request{'s' if count != 1 else ''} of unknown cost")
        if self.overlaps:
            notes.append("rows overlap: a record with several tags is in each")
        return (
            f"<table class='cometnb-spend'><tr><th>{html.escape(self.by)}</th><th>USD</th>"
            f"<th>requests</th><th></th></tr>{rows}<tr><th>total</th>"
            f"<th style='text-align:right'>{format_spend(self.total)}</th>"
            f"<th style='text-align:right'>{requests}</th>"
            f"<th style='font-weight:normal'>{html.escape('; '.join(notes))}</th></tr></table>"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Terminal IPython: the HTML table's rows as text (``unknown``, not ``0.0``)."""
        lines = [f"{k}: {self._figure(k)} ({self.counts.get(k, 0)} requests)" for k in self]
        total = f"total: {format_spend(self.total)}"
        if self.unknown and self.by != "tag":
            total += f", excluding {self.unknown_total} request(s) of unknown cost"
        printer.text("\n".join([*lines, total]))

    def _figure(self, key: str) -> str:
        """A row's USD to the cent, or ``unknown`` when none of its requests had a price."""
        if self.unknown.get(key, 0) == self.counts.get(key, 0) and self.counts.get(key):
            return "unknown"
        return format_spend(self[key])

    def _note(self, key: str) -> str:
        parts = []
        if self.estimated.get(key):
            parts.append(f"{self.estimated[key]} estimated")
        unknown = self.unknown.get(key, 0)
        if unknown and unknown != self.counts.get(key):
            parts.append(f"{unknown} of unknown cost, not included")
        return html.escape(", ".join(parts))


def spend_start(since: Any, by: Any) -> float | None:
    """Check ``spend``'s arguments; ``since`` as a Unix timestamp (``None``: from the start)."""
    if by not in (None, "model", "day", "tag"):
        raise ValueError(f"by must be 'model', 'day' or 'tag' (or None for a total); got {by!r}")
    return as_timestamp(since)


def as_timestamp(value: Any) -> float | None:
    """A moment as a Unix timestamp: a datetime, a date, an ISO string or a number (``None``
    stays ``None``); naive times are UTC."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value)
    if isinstance(value, _dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return aware.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp()
    raise TypeError(
        f"since must be a datetime, a date, an ISO string or a timestamp; got {value!r}"
    )


def spend_keys(rec: Record, by: str) -> list[str]:
    """The rows of a table ``by`` model, day or tag that ``rec`` counts in."""
    if by == "model":
        return [rec.model]
    if by == "day":
        return [rec.created_at.date().isoformat()]
    return tag_keys(rec.tags)


def tag_keys(tags: Iterable[str]) -> list[str]:
    """The rows of ``spend(by="tag")`` a record with these tags counts in."""
    return list(tags) or [UNTAGGED]


def _nanos(cost: Cost) -> int:
    return 0 if cost.usd is None else to_nanos(cost.usd)


def spend(records: Iterable[Record], since: Any = None, by: By | None = None) -> float | SpendTable:
    """Total USD the records cost (unknown costs are left out), or a :class:`SpendTable`.

    The total is the exact sum of each cost in whole nano-dollars, as a float: ``0.51842``.

    ``since`` keeps records made at or after it (UTC when it has no time zone). ``by`` is
    ``"model"``, ``"day"`` (UTC) or ``"tag"`` (a record with two tags counts in both rows; the
    table's ``total`` still counts it once).

    Example::

        >>> h.spend()  # doctest: +SKIP
        0.51842
        >>> h.spend(by="model")  # doctest: +SKIP
        {'gpt-image-2': 0.46574, 'dall-e-3': 0.05268, 'qwen-image': 0.0}
    """
    start = spend_start(since, by)
    chosen = [r for r in records if start is None or r.timestamp >= start]
    if by is None:
        return from_nanos(sum(_nanos(r.cost) for r in chosen))
    table = SpendTable(by)
    total = 0
    for rec in chosen:
        cost = rec.cost
        total += _nanos(cost)
        for key in spend_keys(rec, by):
            table._add(key, cost)
    return table._finish(total, len(chosen))


# The key a row is grouped by. By day: the UTC day number as Python finds it for a timestamp
# >= 0 (datetime.fromtimestamp rounds to the microsecond, so the last half microsecond of a
# day belongs to the next one; SQLite's date() rounds to the millisecond instead).
_DAY = (
    "(CAST(created_at AS INTEGER) + "
    "((created_at - CAST(created_at AS INTEGER)) * 1000000.0 >= 999999.5)) / 86400"
)
_GROUP_KEY = {"model": "model", "day": _DAY, "tag": "tags"}  # tag: by tag list, split below
# A row's usd in whole nano-dollars: the float operations of cost.to_nanos, so the same
# integer. TOTAL adds them as doubles, exact below 2**53 nano-dollars (nine million USD), and
# never fails on overflow as SUM would.
_NANOS = f"CAST(u * {float(NANOS_PER_USD)!r} + 0.5 AS INTEGER)"
# The index's range from a lower bound: each row's kind (k), usd (u) and group key.
_RANGE = (
    f"SELECT {SPEND_KIND} AS k, {SPEND_USD} AS u, {{}} AS key FROM records WHERE created_at >= ?"
)
# The total: the USD of the rows SQL prices (u is NULL where k = 0) and how many are Python's.
_TOTAL = (
    f"SELECT TOTAL(CASE WHEN k < 3 THEN {_NANOS} END), SUM(k = 3) FROM ({_RANGE.format('NULL')})"
)
_PYTHON_ROWS = "SELECT id, created_at, model, status, tags, doc FROM records WHERE created_at >= ?"
_EPOCH = _dt.date(1970, 1, 1)


def spend_from_index(index: Index, since: Any = None, by: By | None = None) -> float | SpendTable:
    """``History.spend``: the total USD since ``since``, or a :class:`SpendTable` by ``by``."""
    start = spend_start(since, by)
    # Rows from 0 on are SQL's; earlier ones (none in practice) are Python's, for their day.
    low = 0.0 if start is None else max(start, 0.0)
    index.ensure_spend_index()
    with index.reading() as conn:
        if conn is None:  # no index file yet: nothing was spent
            return 0.0 if by is None else SpendTable(by)._finish(0, 0)
        if by is None:
            nanos, python = conn.execute(_TOTAL, (low,)).fetchone()
            left = list(_python_rows(conn, start, low, bool(python)))
            return from_nanos(int(nanos) + sum(_row_nanos(row) for row in left))
        groups = conn.execute(_grouped(by), (low,)).fetchall()
        left = list(_python_rows(conn, start, low, any(g[1] == 3 for g in groups)))
    return _table(by, groups, left)


def _grouped(by: str) -> str:
    """USD and count per key of ``by`` and kind, read from the index only.

    ``LIMIT -1`` keeps SQLite from flattening the subquery into the ``GROUP BY`` (a subquery
    with a LIMIT is never flattened into an aggregate), so its expressions come from the
    index; it runs as a co-routine, on every SQLite version (a MATERIALIZED CTE needs 3.35
    and is slower: it writes the rows to a temporary table first).
    """
    rows = _RANGE.format(_GROUP_KEY[by])
    return f"SELECT key, k, TOTAL({_NANOS}), COUNT(*) FROM ({rows} LIMIT -1) GROUP BY key, k"


@dataclass
class _Row:
    """A record SQL left to Python: what ``spend`` reads of it (``spend.Record``)."""

    cost: Cost
    timestamp: float
    model: str
    tags: tuple[str, ...]

    @property
    def created_at(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.timestamp, _dt.timezone.utc)


def _python_rows(
    conn: sqlite3.Connection, start: float | None, low: float, priced_later: bool
) -> Iterator[_Row]:
    """The records SQL does not price (``k = 3``), and those made before 1970."""
    found: list[tuple[Any, ...]] = []
    if start is None or start < 0:
        bound = -float("inf") if start is None else start
        found += conn.execute(f"{_PYTHON_ROWS} AND created_at < 0", (bound,)).fetchall()
    if priced_later:
        found += conn.execute(f"{_PYTHON_ROWS} AND {SPEND_KIND} = 3", (low,)).fetchall()
    for _id, created, model, status, tags, doc in sorted(found):  # in record order
        # The tags column as Record._from_row reads it (no Record is built here).
        keep = () if tags == "[]" else tuple(json.loads(tags))
        yield _Row(record_cost(json.loads(doc), status), created, model, keep)


def _table(by: str, groups: list[tuple[Any, ...]], left: list[_Row]) -> SpendTable:
    table = SpendTable(by)
    total, requests = 0, 0
    for key, kind, usd_nanos, count in groups:
        if kind == 3:
            continue  # rows Python prices: added below
        nanos = int(usd_nanos)
        total, requests = total + nanos, requests + count
        for name in _keys(by, key):
            table._merge(name, nanos, count, count * (kind == 0), count * (kind == 2))
    for row in left:
        total, requests = total + _row_nanos(row), requests + 1
        for name in spend_keys(row, by):
            table._add(name, row.cost)
    return table._finish(total, requests)


def _row_nanos(row: _Row) -> int:
    return 0 if row.cost.usd is None else to_nanos(row.cost.usd)


def _keys(by: str, key: Any) -> list[str]:
    if by == "model":
        return [key]
    if by == "day":
        return [(_EPOCH + _dt.timedelta(days=key)).isoformat()]
    return tag_keys(() if key == "[]" else json.loads(key))
