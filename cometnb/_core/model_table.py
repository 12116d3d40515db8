"""``cometnb.models()``: the registry as a table a person (or pandas) can read.

:class:`ModelTable` holds one :class:`~cometnb._core.model_registry.ModelInfo` per known id,
live models first, then ids learned elsewhere (``assumed``), then deprecated and retired ones.
Each row's prices come from the active price table; the HTML view is the ``"models"`` view
(:mod:`cometnb._views.model_table`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cometnb._core.model_registry import CHECKED_ON, FAMILY_RULE, MODELS, ModelInfo, model_info
from cometnb._core.prices import Cost, PriceTable, active_table, image_price
from cometnb._core.text import did_you_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PRICE_SIZE", "ModelTable", "models"]


# The size every row is priced at, so rows compare.
PRICE_SIZE = "1024x1024"


_STATUS_ORDER = {"live": 0, "assumed": 1, "deprecated": 2, "retired": 3}


class ModelTable:
    """The models cometnb knows: iterate for :class:`ModelInfo` rows, ``table[id]`` for one.

    Example::

        >>> table = models(today=_dt.date(2026, 12, 5))
        >>> table["gpt-image-1-mini"].status_on(table.today), "gpt-image-2" in table
        ('retired', True)
    """

    def __init__(
        self,
        rows: Iterable[ModelInfo],
        prices: PriceTable | None = None,
        today: _dt.date | None = None,
    ) -> None:
        self.today = today or _dt.date.today()
        self.prices = prices or active_table()
        ordered = sorted(rows, key=lambda m: _STATUS_ORDER[m.status_on(self.today)])
        self._rows = {m.id: m for m in ordered}

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, model: object) -> bool:
        return model in self._rows

    def __getitem__(self, model: str) -> ModelInfo:
        found = self._rows.get(model)
        if found is None:
            hint = did_you_mean(model, list(self._rows), 0.8)
            raise KeyError(f"{model} is not a model cometnb knows.{hint}")
        return found

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for m in self:
            counts[m.status_on(self.today)] = counts.get(m.status_on(self.today), 0) + 1
        parts = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"<ModelTable {len(self)} models: {parts}; prices {self.prices.label}>"

    def _repr_html_(self) -> str:
        from cometnb._core.session import render

        return render("models", self)

    def status(self, model: str) -> str:
        """``live``, ``assumed``, ``deprecated`` or ``retired`` on :attr:`today`."""
        return self[model].status_on(self.today)

    def price_at(self, model: str, quality: str | None) -> Cost:
        """One :data:`PRICE_SIZE` image of ``model`` at ``quality`` (an upper bound where the
        token counts are not published, labelled so in its basis)."""
        return image_price(model, quality, PRICE_SIZE, self.prices)

    def prices_by_quality(self, model: str) -> dict[str, Cost]:
        """``{quality: cost}`` of one :data:`PRICE_SIZE` image, for each quality it takes
        (``{"*": cost}`` for a model without a quality list)."""
        qualities = self[model].qualities or (None,)
        return {q or "*": self.price_at(model, q) for q in qualities}

    def to_dataframe(self) -> pd.DataFrame:
        """One row per model (needs pandas: ``pip install cometnb[pandas]``)."""
        from cometnb._core.dataframes import frame_by_id

        return frame_by_id([self.row(m.id) for m in self])

    def row(self, model: str) -> dict[str, Any]:
        """The plain-data row of ``model`` (what :meth:`to_dataframe` and the view show)."""
        m = self[model]
        gen = m.generation
        return {
            "id": m.id,
            "family": m.family,
            "status": m.status_on(self.today),
            "retired_on": m.retired_on,
            "replacement": m.replacement,
            "listed": m.listed,
            "qualities": ", ".join(m.qualities),
            "formats": ", ".join(m.formats),
            "complexity": ", ".join(gen.complexities) if gen else "",
            "max_images": m.max_images,
            "edits": m.edits,
            "references": m.edit.max_images if m.edits else 0,
            "mask": m.edits and m.edit.mask,
            "markup": m.edits and m.edit.markup,
            "prices": {q: c.usd for q, c in self.prices_by_quality(m.id).items()},
            "price_basis": self.prices.label,
            "source": m.source,
            "learned": self.prices.learned.get(m.id, ""),
            "as_of": self.as_of(m.id),
        }

    def as_of(self, model: str) -> str:
        """When the row's facts were stated: the date the built-in rows were checked, or the
        day the id was learned (catalog, ``GET /v1/models``); ``""`` for an id only typed."""
        if self[model].source == "built-in":
            return CHECKED_ON.isoformat()
        learned = self.prices.learned.get(model, "")
        return learned.rpartition(", ")[2] if learned else ""

    def source_text(self, model: str) -> str:
        """Where the row came from, in words: ``built-in table (checked 2026-12-05)`` or
        ``family rule (…); learned from the CometAPI catalog, 2026-12-06``."""
        if self[model].source == "built-in":
            return f"built-in table (checked {self.as_of(model)})"
        learned = self.prices.learned.get(model)
        where = f"; learned from {learned}" if learned else "; not listed by the API yet"
        return f"family rule ({FAMILY_RULE}){where}"


def models(
    also: Iterable[str] = (),
    *,
    unlisted: bool = False,
    prices: PriceTable | None = None,
    today: _dt.date | None = None,
) -> ModelTable:
    """The models cometnb knows, as a :class:`ModelTable` (shown as a table in a notebook).

    The ids ``refresh_prices()`` learned (the price table's ``learned``) are rows too, and
    ``also`` adds more: a later ``gpt-image-2.N-*`` id gets its family's rules, status
    ``assumed``; ids with no rule are left out. ``unlisted=True`` adds SDK aliases, dated
    snapshots and edit-only models.
    """
    prices = prices or active_table()
    rows = [m for m in MODELS.values() if unlisted or m.listed]
    known = {m.id for m in rows}
    for model in (*prices.learned, *also):
        info = model_info(model)
        if info is not None and model not in known:
            rows.append(info)
            known.add(model)
    return ModelTable(rows, prices, today)
