"""The grid view: a labelled table of a parameter sweep, redrawn live as cells finish."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cometnb._core.settings import active
from cometnb._core.text import clip
from cometnb._views.common import (
    CELL,
    FONT,
    MUTED,
    TABLE,
    cost_html,
    cost_of,
    error_box,
    esc,
    file_link,
    img_tag,
    one_line,
    preview_uri,
    sources_html,
    status_badge,
    synthetic_badge,
    tokens,
)

if TYPE_CHECKING:
    from cometnb._core.generations import Grid, GridCell

__all__ = ["grid_html"]


def grid_html(
    grid: Grid,
    cell_status: Mapping[int, str] | Sequence[str] | None = None,
    finished: dict[int, str] | None = None,
) -> str:
    """A labelled view of a grid: a table, the first non-prompt axis across and the other axes
    down; a grid of prompts alone (``--each-line``) is a wrapping row of labelled tiles.

    ``cell_status`` (by cell index) is shown in pending cells, e.g. ``"waiting 5 s (HTTP
    429)"``; failed cells show their error (the whole of it one click away). ``finished``
    caches the HTML of finished cells by index across calls, so a live view that redraws the
    grid as cells finish makes each cell's preview once.
    """
    names = list(grid.axes)
    px = min(active().thumbnail_px, 256)
    col_axis, row_axes = _grid_layout(names)

    def drawn(index: int, cell: GridCell) -> str:
        status = _status_for(cell_status, index)
        if finished is None or cell.generation is None or status is not None:
            return _grid_cell(cell, status, px)
        if index not in finished:
            finished[index] = _grid_cell(cell, None, px)
        return finished[index]

    if col_axis is None and row_axes == ["prompt"]:
        body = _tiles(grid, drawn, px)
    else:
        body = _table(grid, drawn, col_axis, row_axes)
    return f'<div class="cometnb-grid" style="{FONT}">{_grid_summary(grid)}{body}</div>'


def _table(
    grid: Grid, drawn: Callable[[int, GridCell], str], col_axis: str | None, row_axes: list[str]
) -> str:
    names = list(grid.axes)
    where = {tuple(repr(c.coords.get(n)) for n in names): (i, c) for i, c in enumerate(grid.cells)}
    columns = grid.axes[col_axis] if col_axis else [None]
    rows = list(itertools.product(*(grid.axes[n] for n in row_axes))) or [()]

    def cell_at(col_value: Any, row_values: tuple[Any, ...]) -> str:
        coords = dict(zip(row_axes, row_values, strict=True))
        if col_axis is not None:
            coords[col_axis] = col_value
        found = where.get(tuple(repr(coords.get(n)) for n in names))
        if found is None:
            return f'<td style="{CELL}"></td>'
        return f'<td style="{CELL}">{drawn(*found)}</td>'

    corner = esc(" / ".join(row_axes))
    if col_axis is None:  # a lone cell, or axes without a column: one column, named
        head = f'<th style="{CELL}">image</th>'
    else:
        head = "".join(f'<th style="{CELL}">{_axis_label(col_axis, v)}</th>' for v in columns)
    body = []
    for row in rows:
        label = "<br>".join(_axis_label(n, v) for n, v in zip(row_axes, row, strict=True))
        cells = "".join(cell_at(v, row) for v in columns)
        body.append(f'<tr><th style="{CELL}{_LABEL}">{label}</th>{cells}</tr>')
    return (
        f'<table style="{TABLE}">'
        f'<thead><tr><th style="{CELL}">{corner}</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _tiles(grid: Grid, drawn: Callable[[int, GridCell], str], px: int) -> str:
    """``--each-line``: one tile per prompt (its label above its images), wrapping as the page
    allows, in the order of the lines; a row per prompt left most of the page empty."""
    tiles = []
    for index, cell in enumerate(grid.cells):
        label = _axis_label("prompt", cell.coords.get("prompt"))
        tiles.append(
            f'<div class="cometnb-grid-tile" style="{CELL}width:{px}px">'
            f'<div style="margin-bottom:4px;{_LABEL}">{label}</div>{drawn(index, cell)}</div>'
        )
    return (
        f'<div class="cometnb-grid-tiles" style="display:flex;flex-wrap:wrap;gap:6px;'
        f'align-items:flex-start">{"".join(tiles)}</div>'
    )


def _grid_layout(names: Sequence[str]) -> tuple[str | None, list[str]]:
    """The column axis and the row axes: prompts (long text) make better rows than columns."""
    if not names:
        return None, []
    if len(names) == 1:
        return (None, list(names)) if names[0] == "prompt" else (names[0], [])
    col = next((n for n in names if n != "prompt"), names[0])
    return col, [n for n in names if n != col]


# A label wraps at spaces (and inside a very long word), never past its cell.
_LABEL = "overflow-wrap:anywhere;font-weight:normal;max-width:320px;"
PROMPT_LABEL_CHARS = 160


def _axis_label(name: str, value: Any) -> str:
    """``prompt=a red fox…``: a prompt wraps over a few lines, cut at a word past
    :data:`PROMPT_LABEL_CHARS` with the whole prompt on hover."""
    text = str(value)
    if name != "prompt":
        return f'<span style="{MUTED}">{esc(name)}=</span>{esc(text)}'
    flat = " ".join(text.split())
    shown = clip(flat, PROMPT_LABEL_CHARS, at_word=True)
    return f'<span title="{esc(flat)}"><span style="{MUTED}">prompt=</span>{esc(shown)}</span>'


def _status_for(cell_status: Any, index: int) -> str | None:
    if cell_status is None:
        return None
    if isinstance(cell_status, Mapping):
        value = cell_status.get(index)
    else:
        value = cell_status[index] if index < len(cell_status) else None
    return None if value is None else str(value)


def _grid_cell(cell: GridCell, status: str | None, px: int) -> str:
    gen = cell.generation
    if gen is None:
        return f'<div style="{MUTED}padding:8px">{esc(status or "pending")}</div>'
    if not gen.ok:
        label = status_badge(gen.state)
        box = error_box(str(gen.error) if gen.error else None, 200)
        # As wide as an image would be, so one failure does not stretch its whole column.
        return f'{label}<div style="max-width:{px}px">{box}</div>'
    pics = "".join(
        img_tag(preview_uri(img, px), px, gen.prompt)
        + f"<div>{file_link(img.path, label='original')}</div>"
        for img in gen.images
    )
    caption = " · ".join(p for p in (f"{gen.elapsed_s:.1f} s", tokens(gen.usage)) if p)
    extra = synthetic_badge() if gen.synthetic else ""
    note = f'<div style="{MUTED}">{esc(status)}</div>' if status else ""
    cost = cost_html(cost_of(gen))
    cost = f" · {cost}" if cost else ""
    return f'{pics}<div style="{MUTED}">{extra}{esc(caption)}{cost}</div>{note}'


def _grid_summary(grid: Grid) -> str:
    gens = grid.generations
    skipped = sum(1 for g in gens if g.budget_stopped)
    done = sum(1 for g in gens if g.ok)
    cancelled = [g for g in gens if g.status == "cancelled" and not g.budget_stopped]
    sent = sum(1 for g in cancelled if getattr(g.error, "sent", None))
    failed = len(gens) - done - len(cancelled) - skipped
    total = len(grid.cells)
    # "2×3 grid"; a one-axis grid is simply "3 requests" (not "3 grid").
    shape = (
        f"{'×'.join(str(n) for n in grid.shape)} grid"
        if len(grid.shape) > 1
        else (f"{total} requests")
    )
    parts = [shape, f"{done}/{total} done"]
    if failed:
        parts.append(f"{failed} failed")
    if len(cancelled) - sent:
        parts.append(f"{len(cancelled) - sent} cancelled before sending")
    if sent:
        parts.append(f"{sent} cancelled after sending (may be billed)")
    if skipped:
        parts.append(f"{skipped} not sent (budget)")
    text = " · ".join(parts)
    badge = synthetic_badge() if any(g.synthetic for g in gens) else ""
    return f'<div style="margin-bottom:4px">{badge}{esc(text)}</div>{_grid_shared(grid)}'


def _grid_shared(grid: Grid) -> str:
    """What every cell sends alike: the prompt (unless it is an axis), then other settings."""
    bodies = [cell.request.to_body() for cell in grid.cells]
    if len(bodies) < 2:
        return ""  # a lone cell's card says it all
    shared = {k: v for k, v in bodies[0].items() if all(k in b and b[k] == v for b in bodies)}
    prompt = shared.pop("prompt", None)
    settings = " · ".join(f"{k}={one_line(str(v), 40)}" for k, v in shared.items())
    parts = [f"<div>{esc(one_line(str(prompt), 300))}</div>" if prompt is not None else ""]
    if settings:
        parts.append(f'<div style="{MUTED}">{esc(settings)}</div>')
    inputs = [cell.request.images for cell in grid.cells]
    if inputs[0] and all(i == inputs[0] for i in inputs):  # a grid of edits of the same inputs
        parts.insert(0, sources_html(inputs[0], arrow="↓"))  # the cells below are the results
    return f'<div class="cometnb-grid-shared" style="margin-bottom:4px">{"".join(parts)}</div>'
