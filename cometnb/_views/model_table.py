"""The HTML of ``cometnb.models()``: one row per model a person can scan.

Status first (live, assumed, deprecated, retired with its date and replacement), then what the
model accepts and one 1024² image's price at each quality. Upper-bound prices (``auto``,
unpublished ``xhigh`` / ``max`` token counts) are marked ``≤`` with the basis in the tooltip.
"""

from __future__ import annotations

from typing import Any

from cometnb._core.model_table import PRICE_SIZE, ModelTable
from cometnb._core.prices import Cost, format_usd
from cometnb._views.common import BADGE, CELL, FONT, MUTED, TABLE, esc

__all__ = ["models_html"]


_STATUS_STYLE = {
    "live": "background:#d7f5dd;color:#0b4d1c;",
    "assumed": "background:#fff3b0;color:#5a4600;",
    "deprecated": "background:#ffe2c2;color:#6b3300;",
    "retired": "background:#f3d0d0;color:#611;",
}


_HEAD = (
    "model", "status", "qualities", "formats", "complexity", "references", "mask / markup", "n",
    f"price per {PRICE_SIZE.replace('x', '×')} image", "source",
)  # fmt: skip


def models_html(table: ModelTable) -> str:
    """The table as HTML (no script, inline styles: it works in any notebook front end)."""
    head = "".join(f'<th style="{CELL}">{esc(h)}</th>' for h in _HEAD)
    rows = "".join(_row(table, m.id) for m in table)
    caption = (
        f'<caption style="text-align:left;{MUTED}">{len(table)} models · prices: '
        f"{esc(table.prices.label)} ({esc(table.prices.source)}) · ≤ marks an upper bound"
        "</caption>"
    )
    return (
        f'<div style="{FONT}"><table style="{TABLE}">{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _row(table: ModelTable, model: str) -> str:
    data = table.row(model)
    info = table[model]
    status = data["status"]
    badge = f'<span style="{BADGE}{_STATUS_STYLE[status]}">{esc(status)}</span>'
    if info.retired_on is not None:
        verb = "shut down" if status == "retired" else "shuts down"
        badge += (
            f'<div style="{MUTED}">{verb} {esc(info.retired_on.isoformat())}; use '
            f"{esc(info.replacement)}</div>"
        )
    formats = esc(data["formats"]) or "—"
    cells = (
        f"<b>{esc(model)}</b>",
        badge,
        esc(data["qualities"]) or "—",
        formats,
        esc(data["complexity"]) or "—",
        str(data["references"]) if data["edits"] else "no edits",
        " / ".join(k for k in ("mask", "markup") if data[k]) or "—",
        f"1–{data['max_images']}" if data["max_images"] > 1 else str(data["max_images"] or "—"),
        _prices(table.prices_by_quality(model)),
        esc(_source(data, table)),
    )
    return "<tr>" + "".join(f'<td style="{CELL}">{c}</td>' for c in cells) + "</tr>"


def _prices(costs: dict[str, Cost]) -> str:
    parts = []
    for quality, cost in costs.items():
        name = "" if quality == "*" else f"{esc(quality)} "
        if cost.usd is None:
            parts.append(f'<span title="{esc(cost.basis)}">{name}unknown</span>')
            continue
        mark = "≤ " if "upper bound" in cost.basis else ""
        figure = format_usd(cost.usd)
        parts.append(f'<span title="{esc(cost.basis)}">{name}{mark}{esc(figure)}</span>')
    return "<br>".join(parts)


def _source(data: dict[str, Any], table: ModelTable) -> str:
    return f"{table.source_text(data['id'])}; prices {table.prices.label}"
