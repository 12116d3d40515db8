"""Comparing records: which request settings they share and which differ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cometnb._core import hooks
from cometnb._storage.records import Record

__all__ = ["Comparison", "split_settings"]

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
        return hooks.render("compare", self.records)

    def __repr__(self) -> str:
        return f"<Comparison of {len(self.records)} records; differing: {sorted(self.differing)}>"
