"""History views: the table of records, newest first, and records compared side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cometnb._core.settings import active
from cometnb._storage.records import split_settings
from cometnb._views.common import (
    CELL,
    FONT,
    HIGHLIGHT,
    MUTED,
    TABLE,
    THUMB_PX,
    cost_cell_html,
    cost_of,
    error_box,
    esc,
    file_link,
    img_tag,
    local_time,
    one_line,
    preview_uri,
    settings_text,
    status_badge,
    synthetic_badge,
    thumb_uri,
    tokens,
    total_html,
    with_sources,
)
from cometnb._views.credentials import image_mark, record_mark

if TYPE_CHECKING:
    from cometnb._storage.records import Record

__all__ = ["HISTORY_ROWS", "compare_html", "history_html"]

HISTORY_ROWS = 50


def history_html(records: Sequence[Record], limit: int = HISTORY_ROWS) -> str:
    """A compact table of records, newest first, at most ``limit`` rows plus an "N more" line."""
    if not records:
        return f'<div style="{FONT}{MUTED}">The history is empty.</div>'
    shown = list(reversed(records[-limit:])) if limit > 0 else []
    heads = ("", "when", "prompt", "model", "settings", "status", "time", "cost", "tags", "id")
    head = "".join(
        f'<th style="{CELL}{"text-align:right;" if i in _RIGHT else ""}">{h}</th>'
        for i, h in enumerate(heads)
    )
    rows = "".join(_history_row(r) for r in shown)
    more = len(records) - len(shown)
    tail = f'<div style="{MUTED}margin-top:4px">… {more} more (older)</div>' if more else ""
    return (
        f'<div class="cometnb-history" style="{FONT}"><div>{len(records)} record(s)</div>'
        f"{total_html(records)}"
        f'<table style="{TABLE}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>{tail}</div>"
    )


_RIGHT = (6, 7)  # the time and cost columns: figures line up on the right


def _history_row(rec: Record) -> str:
    images = rec.images
    thumb = img_tag(thumb_uri(images[0]), THUMB_PX // 2 * 2, rec.prompt) if images else ""
    settings = one_line(settings_text(rec.params), 120)
    status = status_badge(rec.status) + (synthetic_badge() if rec.synthetic else "")
    status += record_mark(rec)
    if rec.error:
        status += f'<div style="color:#c62828">{esc(one_line(rec.error, 160))}</div>'
    cells = (
        thumb,
        esc(local_time(rec.created_at)),
        f'<span title="{esc(rec.prompt)}">{esc(one_line(rec.prompt, 160))}</span>',
        esc(rec.model),
        esc(settings),
        status,
        esc(f"{rec.elapsed_s:.1f} s"),
        cost_cell_html(cost_of(rec)),
        esc(", ".join(rec.tags)),
        f"<code>{esc(rec.id)}</code>",
    )
    nowrap = (1, 3, 6, 7, 9)  # when, model, time, cost, id: short values that wrap badly
    return (
        "<tr>"
        + "".join(
            f'<td style="{CELL}{"white-space:nowrap;" if i in nowrap else ""}'
            f'{"text-align:right;" if i in _RIGHT else ""}">{c}</td>'
            for i, c in enumerate(cells)
        )
        + "</tr>"
    )


def compare_html(records: Sequence[Record]) -> str:
    """Records side by side: same-size previews aligned, differing settings highlighted."""
    px = min(active().thumbnail_px, 320)
    shared, differing = split_settings(records)
    head = "".join(
        f'<th style="{CELL}"><code>{esc(r.id)}</code><br>'
        f'<span style="{MUTED}">{esc(local_time(r.created_at))}</span></th>'
        for r in records
    )
    pictures = "".join(f'<td style="{CELL}">{_compare_images(r, px)}</td>' for r in records)
    rows = [f'<tr><th style="{CELL}"></th>{pictures}</tr>']
    for key, values in differing.items():
        cells = "".join(
            f'<td style="{CELL}{HIGHLIGHT}">{esc(one_line(_sent(v), 300))}</td>' for v in values
        )
        rows.append(f'<tr><th style="{CELL}{HIGHLIGHT}">{esc(key)}</th>{cells}</tr>')
    outcome = "".join(f'<td style="{CELL}">{_outcome(r)}</td>' for r in records)
    rows.append(f'<tr><th style="{CELL}">result</th>{outcome}</tr>')
    listed = "".join(
        f"<li><b>{esc(k)}</b>: {esc(one_line(_sent(v), 600))}</li>" for k, v in shared.items()
    )
    same = f"<div>Same in all:</div><ul style='margin:2px 0'>{listed}</ul>" if listed else ""
    return (
        f'<div class="cometnb-compare" style="{FONT}">'
        f'<table style="{TABLE}"><thead><tr><th style="{CELL}"></th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{same}</div>"
    )


def _sent(value: Any) -> str:
    """A setting's value as text; ``None`` means the record did not send it."""
    return "(not sent)" if value is None else str(value)


def _compare_images(rec: Record, px: int) -> str:
    if not rec.images:
        result = error_box(rec.error or rec.status, 300)
    else:
        result = "".join(
            img_tag(preview_uri(img, px), px, rec.prompt, fixed=True)
            + f"<div>{file_link(img.path, label='original')}</div>{image_mark(img)}"
            for img in rec.images
        )
    return with_sources(rec.sources, result, px // 3)  # source → result, for edits


def _outcome(rec: Record) -> str:
    parts = [f"{rec.elapsed_s:.1f} s", tokens(rec.usage)]
    badges = status_badge(rec.status) + (synthetic_badge() if rec.synthetic else "")
    return badges + esc(" · ".join(p for p in parts if p))
