"""``History.spend(since, by)`` answered by SQLite, not by loading every record.

The figures come from the small ``records_spend`` index (``Index.SPEND_INDEX``: time, model,
tags and two values of each record's stored cost), not from the documents: a total is one
aggregate over a range of it, a table one ``GROUP BY`` over a subquery reading that range
(SQLite 3.40 recomputes indexed expressions from the documents in a ``GROUP BY`` of its own).
The few records SQL cannot judge as Python does (no stored cost: an older record, priced with
today's table; odd JSON types) are read and priced in Python, like records made before 1970
(their day is computed in Python). The answer is :func:`spend.spend`'s on ``h.records()``:
same rows in the same order, counts, unknown, estimated and requests, and the same figures:
both add each cost as whole nano-dollars (``_NANOS``, the SQL twin of ``cost.to_nanos``), so
the order of addition cannot change a bit of the answer. This holds for
the documents cometnb writes (``json.dumps`` never repeats a key); in a hand-edited document
that repeats one, SQLite reads the first value and Python's ``json`` the last.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cometnb._core.prices import NANOS_PER_USD, Cost, from_nanos, to_nanos
from cometnb._storage.index import SPEND_KIND, SPEND_USD, Index
from cometnb._storage.spend import By, SpendTable, record_cost, spend_keys, spend_start, tag_keys

__all__ = ["spend_from_index"]

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
