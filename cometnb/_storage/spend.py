"""The ledger a history keeps: each record's cost, and ``History.spend(since, by)``.

A record stores its cost when it is written (``doc["cost"]``: USD, estimated or not, the basis
and the price table's name and date), so a later price change does not rewrite history. A
record written before costs were kept is priced with today's table and marked estimated.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cometnb._core.cost import Cost, format_usd
from cometnb._core.costing import actual_cost, failure_cost

if TYPE_CHECKING:
    from cometnb._core.models import ApiResult


class Record(Protocol):
    """What :func:`spend` reads of a record (``cometnb.Record`` has it; no import, no cycle)."""

    @property
    def cost(self) -> Cost: ...
    @property
    def created_at(self) -> _dt.datetime: ...

    model: str
    timestamp: float
    tags: tuple[str, ...]


__all__ = [
    "SpendTable",
    "as_timestamp",
    "cost_of_failure",
    "cost_of_result",
    "record_cost",
    "spend",
    "spend_keys",
    "spend_start",
    "tag_keys",
]

By = Literal["model", "day", "tag"]
UNTAGGED = "(untagged)"


def cost_of_result(body: Mapping[str, Any], result: ApiResult) -> Cost:
    """What a successful response cost, priced with the table in force now."""
    return actual_cost(body, result.usage, len(result.images), result.meta)


def cost_of_failure(body: Mapping[str, Any], error: BaseException) -> Cost:
    """What a failed request cost: $0 when refused, its estimate when it may have been billed."""
    billed = getattr(error, "may_be_billed", None)
    status = getattr(error, "status", None)
    return failure_cost(body, type(error).__name__, status, may_be_billed=billed)


def record_cost(doc: Mapping[str, Any], status: str) -> Cost:
    """The cost a record stored, or (older records) today's price of it, marked estimated."""
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


class SpendTable(dict[str, float]):
    """USD spent per model, day or tag (``h.spend(by=...)``), largest first.

    ``counts`` holds how many requests each row has, ``unknown`` how many of them had no price
    (not in the figure), ``estimated`` how many were estimated. :attr:`total` counts each
    record once, so it equals ``h.spend()``; by tag, rows may overlap (a record with two tags
    is in both), so they can add up to more than the total.
    """

    def __init__(self, by: str) -> None:
        super().__init__()
        self.by = by
        self.counts: dict[str, int] = {}
        self.unknown: dict[str, int] = {}
        self.estimated: dict[str, int] = {}
        self._total: float | None = None  # each record once (set by spend())
        self.requests: int | None = None

    @property
    def total(self) -> float:
        """What the records cost, each counted once (``h.spend()`` for the same records)."""
        return self._total if self._total is not None else sum(self.values())

    @property
    def overlaps(self) -> bool:
        """True when some record is in more than one row (by tag, with two tags)."""
        return self.requests is not None and sum(self.counts.values()) > self.requests

    def _add(self, key: str, cost: Cost) -> None:
        unknown = cost.usd is None
        self._merge(key, cost.usd or 0.0, 1, int(unknown), int(not unknown and cost.estimated))

    def _merge(self, key: str, usd: float, count: int, unknown: int, estimated: int) -> None:
        """Add ``count`` requests costing ``usd`` in all to row ``key`` (``unknown`` of them
        without a price, ``estimated`` of the others estimated)."""
        self.counts[key] = self.counts.get(key, 0) + count
        self[key] = self.get(key, 0.0) + usd
        if unknown:
            self.unknown[key] = self.unknown.get(key, 0) + unknown
        if estimated:
            self.estimated[key] = self.estimated.get(key, 0) + estimated

    def _finish(self, total: float, requests: int) -> SpendTable:
        """Order the rows largest first (ties by name) and set :attr:`total` and ``requests``.

        The sort rounds to a billionth of a dollar: the same figures added in another order
        (SQL's ``SUM`` against a Python loop) may differ in the last bits, which must not
        reorder rows of equal spend.
        """
        ordered = sorted(self.items(), key=lambda kv: (-round(kv[1], 9), kv[0]))
        self.clear()
        self.update(ordered)
        for counts in (self.counts, self.unknown, self.estimated):
            kept = {k: counts[k] for k in self if k in counts}
            counts.clear()
            counts.update(kept)
        self._total, self.requests = total, requests
        return self

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{format_usd(v)}</td>"
            f"<td style='text-align:right'>{self.counts.get(k, 0)}</td>"
            f"<td>{self._note(k)}</td></tr>"
            for k, v in self.items()
        )
        requests = self.requests if self.requests is not None else sum(self.counts.values())
        note = "rows overlap: a record with several tags is in each" if self.overlaps else ""
        return (
            f"<table class='cometnb-spend'><tr><th>{html.escape(self.by)}</th><th>USD</th>"
            f"<th>requests</th><th></th></tr>{rows}<tr><th>total</th>"
            f"<th style='text-align:right'>{format_usd(self.total)}</th>"
            f"<th style='text-align:right'>{requests}</th>"
            f"<th style='font-weight:normal'>{html.escape(note)}</th></tr></table>"
        )

    def _note(self, key: str) -> str:
        parts = []
        if self.estimated.get(key):
            parts.append(f"{self.estimated[key]} estimated")
        if self.unknown.get(key):
            parts.append(f"{self.unknown[key]} of unknown cost")
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


def spend(records: Iterable[Record], since: Any = None, by: By | None = None) -> float | SpendTable:
    """Total USD the records cost (unknown costs are left out), or a :class:`SpendTable`.

    ``since`` keeps records made at or after it (UTC when it has no time zone). ``by`` is
    ``"model"``, ``"day"`` (UTC) or ``"tag"`` (a record with two tags counts in both rows; the
    table's ``total`` still counts it once).

    Example::

        >>> h.spend()  # doctest: +SKIP
        0.4215
        >>> h.spend(by="model")  # doctest: +SKIP
        {'gpt-image-2': 0.3687, 'dall-e-3': 0.0528}
    """
    start = spend_start(since, by)
    chosen = [r for r in records if start is None or r.timestamp >= start]
    if by is None:
        return float(sum(r.cost.usd or 0.0 for r in chosen))
    table = SpendTable(by)
    total = 0.0
    for rec in chosen:
        cost = rec.cost
        total += cost.usd or 0.0
        for key in spend_keys(rec, by):
            table._add(key, cost)
    return table._finish(total, len(chosen))
