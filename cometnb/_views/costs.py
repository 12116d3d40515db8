"""Costs in views: a card's or cell's footer (``$0.053``, ``≈ $0.05``, ``cost unknown``) and a
history's total. Pure functions returning HTML; the basis and price table go in the tooltip."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from cometnb._core.prices import Cost, format_spend, from_nanos, to_nanos

__all__ = ["cost_cell_html", "cost_html", "cost_of", "total_html"]


def cost_of(item: Any) -> Cost | None:
    """The cost of a Generation or Record (``None`` for anything else, or when it cannot say)."""
    try:
        cost = getattr(item, "cost", None)
    except Exception:  # a view must draw even if pricing a damaged record fails
        return None
    return cost if isinstance(cost, Cost) else None


def cost_html(cost: Cost | None) -> str:
    """``<span class="cometnb-cost" title="basis">$0.053</span>``; empty for ``None``."""
    if cost is None:
        return ""
    tip = cost.basis + (f" ({cost.prices} prices)" if cost.prices else "")
    return (
        f'<span class="cometnb-cost" title="{html.escape(tip, quote=True)}">'
        f"{html.escape(cost.label)}</span>"
    )


def column_usd(cost: Cost) -> str:
    """A cost for a table column: always three decimals, so the figures line up
    (``$0.053``, ``≈ $0.210``, ``< $0.001``, ``unknown``)."""
    if cost.usd is None:
        return "unknown"
    usd = cost.usd
    text = "< $0.001" if 0 < usd < 0.0005 else f"${usd:,.3f}"
    return f"≈ {text}" if cost.estimated else text


def cost_cell_html(cost: Cost | None) -> str:
    """:func:`cost_html` for a table column (the cell itself is right-aligned by the table)."""
    if cost is None:
        return ""
    tip = cost.basis + (f" ({cost.prices} prices)" if cost.prices else "")
    return (
        f'<span class="cometnb-cost" title="{html.escape(tip, quote=True)}" '
        f'style="font-variant-numeric:tabular-nums">{html.escape(column_usd(cost))}</span>'
    )


def total_html(records: Iterable[Any]) -> str:
    """``Total $1.20 over 23 requests (2 estimated; excludes 1 of unknown cost)`` for a history
    view: spend to the cent, summed exactly (whole nano-dollars, as ``h.spend()``)."""
    nanos, count, estimated, unknown = 0, 0, 0, 0
    for rec in records:
        count += 1
        cost = cost_of(rec)
        if cost is None or cost.usd is None:
            unknown += 1
            continue
        nanos += to_nanos(cost.usd)
        estimated += cost.estimated
    notes = []
    if estimated:
        notes.append(f"{estimated} estimated")
    if unknown:
        notes.append(f"excludes {unknown} of unknown cost")
    extra = f" ({'; '.join(notes)})" if notes else ""
    plural = "s" if count != 1 else ""
    text = f"Total {format_spend(from_nanos(nanos))} over {count} request{plural}{extra}"
    return f'<div class="cometnb-spend-total">{html.escape(text)}</div>'
