"""The ledger a history keeps: each record's cost, and ``History.spend(since, by)``.

A record stores its cost when it is written (``doc["cost"]``: USD, estimated or not, the basis
and the price table's name and date), so a later price change does not rewrite history. A
record written before costs were kept is priced with today's table and marked estimated.

Sums are exact: each cost is counted in whole nano-dollars (``_core.cost.to_nanos``) and the
integers added, so ``h.spend()`` is ``0.51842``, never ``0.5184200000000001``, and the SQL and
Python answers are equal, not merely close. Views show spend to the cent (``format_spend``).
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cometnb._core.prices import Cost, actual_cost, failure_cost, format_spend, from_nanos, to_nanos

if TYPE_CHECKING:
    from cometnb._core.generations import ApiResult


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
