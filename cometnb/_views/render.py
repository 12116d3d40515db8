"""HTML views: pure functions from results and records to HTML strings.

Plain HTML with inline styles and no JavaScript, so the same output works in JupyterLab,
Notebook 7, VS Code and a saved file. Everything a user or a model wrote (prompts, revised
prompts, tags, errors, settings) goes through :func:`esc`. Images are embedded as data URIs of
small previews (``thumbnail_px``), never the multi-megabyte originals; those stay on disk and
are linked.
"""

from __future__ import annotations

import html
import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cometnb._core.errors import CometError
from cometnb._core.settings import active
from cometnb._storage.compare import split_settings

if TYPE_CHECKING:
    from cometnb._core.models import GeneratedImage, Generation, Grid, GridCell
    from cometnb._storage.records import Record

__all__ = [
    "compare_html",
    "esc",
    "gallery_html",
    "generation_html",
    "grid_html",
    "history_html",
    "image_html",
    "record_html",
]

HISTORY_ROWS = 50
THUMB_PX = 96
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:12px;"
_CARD = (
    "display:inline-block;vertical-align:top;border:1px solid rgba(128,128,128,.45);"
    "border-radius:6px;padding:8px;margin:4px;color:inherit;" + _FONT
)
_MUTED = "opacity:.75;"
_CELL = "border:1px solid rgba(128,128,128,.35);padding:4px 6px;vertical-align:top;text-align:left;"
_TABLE = "border-collapse:collapse;" + _FONT
_HIGHLIGHT = "background:#fff3b0;color:#000;"
_ERROR_BOX = (
    "border:1px solid #d33;background:#fdecea;color:#611;border-radius:4px;padding:6px;"
    "margin:4px 0;white-space:pre-wrap;"
)
_BADGE = "display:inline-block;border-radius:3px;padding:0 5px;margin-right:4px;font-size:11px;"
_MISSING = object()


# --- small pieces ----------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _badge(text: str, background: str, color: str = "#fff") -> str:
    return f'<span style="{_BADGE}background:{background};color:{color}">{esc(text)}</span>'


def _synthetic_badge() -> str:
    return _badge("synthetic (simulator)", "#7a4fd6")


def _status_badge(status: str) -> str:
    colours = {"ok": "#2e7d32", "error": "#c62828", "cancelled": "#757575"}
    return _badge(status, colours.get(status, "#555"))


def _error_box(message: str | None, limit: int = 600) -> str:
    return f'<div style="{_ERROR_BOX}">{esc(_short(message or "failed", limit))}</div>'


def _uri(data: bytes) -> str:
    from cometnb._core.images import data_uri

    return data_uri(data)


def _preview_uri(img: GeneratedImage, px: int) -> str | None:
    """A data URI of a preview no larger than ``px``; ``None`` when the file is gone."""
    try:
        data, _mime = img.preview(px)
    except (OSError, CometError, ValueError):
        return None
    return _uri(data)


def _thumb_uri(img: GeneratedImage, px: int) -> str | None:
    """A tiny thumbnail made from the stored preview (never decodes the original if avoidable)."""
    from cometnb._core.images import make_preview

    source = img.preview_path if img.preview_path is not None else img.path
    try:
        data = source.read_bytes() if source is not None else img.data
        return _uri(make_preview(data, px)[0])
    except (OSError, CometError, ValueError):
        return None


def _img_tag(
    uri: str | None, px: int, alt: str, *, fixed: bool = False, fluid: bool = False
) -> str:
    """An inline preview: at most ``px`` (``fixed``: exactly a px box, for aligned comparisons;
    ``fluid``: as wide as its container allows, for the gallery page)."""
    if uri is None:
        box = f"width:{px}px;height:{px // 2}px;"
        return (
            f'<div style="{box}{_MUTED}display:flex;align-items:center;justify-content:center;'
            f'border:1px dashed rgba(128,128,128,.6)">image file missing</div>'
        )
    if fixed:
        size = f"width:{px}px;height:{px}px;object-fit:contain;"
    elif fluid:
        size = "max-width:100%;height:auto;"
    else:
        size = f"max-width:{px}px;max-height:{px}px;"
    return f'<img src="{uri}" alt="{esc(_short(alt, 200))}" style="{size}display:block">'


def _file_link(path: Path | None, *, link: bool = True, label: str | None = None) -> str:
    """The original's location: a relative link when it lies below the working directory.

    ``label`` replaces the file name as the visible text (narrow grid cells); the full path
    is always in the tooltip.
    """
    if path is None:
        return f'<span style="{_MUTED}">not stored</span>'
    rel = _relative(path)
    text = esc(label or path.name)
    if link and rel is not None:
        href = quote(rel.replace(os.sep, "/"))
        return f'<a href="{esc(href)}" target="_blank" title="{esc(path)}">{text}</a>'
    return f'<code title="{esc(path)}">{text}</code>'


def _relative(path: Path) -> str | None:
    try:
        rel = os.path.relpath(path, os.getcwd())
    except ValueError:  # another drive on Windows
        return None
    return None if rel.startswith("..") else rel


def _tokens(usage: Mapping[str, Any] | None) -> str | None:
    if not usage:
        return None
    total = usage.get("total_tokens")
    if total is None:
        return None
    return f"{total} tokens"


def _caption(
    model: str,
    meta: Mapping[str, Any],
    params: Mapping[str, Any],
    images: Sequence[GeneratedImage],
    elapsed_s: float,
    usage: Mapping[str, Any] | None,
) -> str:
    size = meta.get("size") or params.get("size")
    if not size and images:
        size = f"{images[0].width}x{images[0].height}"
    parts = [
        model,
        size,
        meta.get("quality") or params.get("quality"),
        f"{elapsed_s:.1f} s",
        _tokens(usage),
    ]
    return " · ".join(esc(p) for p in parts if p)


def _local_time(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _settings_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


# --- images and generations ------------------------------------------------------------------


def image_html(img: GeneratedImage, px: int | None = None, *, link: bool = True) -> str:
    """One image: its preview, format and size, and where the original is on disk."""
    px = px or active().thumbnail_px
    caption = f"{esc(img.format)} {img.width}×{img.height} · {_file_link(img.path, link=link)}"
    revised = (
        f'<div style="{_MUTED}max-width:{px}px">revised: {esc(img.revised_prompt)}</div>'
        if img.revised_prompt
        else ""
    )
    tag = _img_tag(_preview_uri(img, px), px, img.revised_prompt or "generated image")
    return (
        f'<figure class="cometnb-image" style="margin:0 4px 4px 0;display:inline-block;'
        f'vertical-align:top;{_FONT}">{tag}'
        f'<figcaption style="{_MUTED}">{caption}</figcaption>{revised}</figure>'
    )


def _card(
    *,
    prompt: str,
    model: str,
    images: Sequence[GeneratedImage],
    meta: Mapping[str, Any],
    params: Mapping[str, Any],
    usage: Mapping[str, Any] | None,
    elapsed_s: float,
    status: str,
    error: str | None,
    synthetic: bool,
    header: str = "",
    link: bool = True,
) -> str:
    px = active().thumbnail_px
    badges = (_synthetic_badge() if synthetic else "") + (
        _status_badge(status) if status != "ok" else ""
    )
    body = "".join(image_html(img, px, link=link) for img in images)
    if status != "ok":
        body += _error_box(error)
    caption = _caption(model, meta, params, images, elapsed_s, usage)
    return (
        f'<div class="cometnb-card" style="{_CARD}max-width:{px * max(1, len(images)) + 40}px">'
        f"{header}{badges}<div>{body}</div>"
        f'<div style="margin:4px 0;white-space:pre-wrap">{esc(_short(prompt, 600))}</div>'
        f'<div style="{_MUTED}">{caption}</div></div>'
    )


def generation_html(gen: Generation) -> str:
    """A card for one generation: previews, caption, links to originals, errors, badges."""
    return _card(
        prompt=gen.prompt,
        model=gen.model,
        images=gen.images,
        meta=gen.meta,
        params=gen.request,
        usage=gen.usage,
        elapsed_s=gen.elapsed_s,
        status=gen.status,
        error=str(gen.error) if gen.error is not None else None,
        synthetic=gen.synthetic,
    )


def record_html(rec: Record) -> str:
    """A card for one history record: the generation card plus id, time, tags and origin."""
    bits = [f"<b>{esc(rec.id)}</b>", esc(_local_time(rec.created_at))]
    if rec.tags:
        bits.append("tags: " + ", ".join(esc(t) for t in rec.tags))
    if rec.origin:
        bits.append(f"re-run of {esc(rec.origin)}")
    header = f'<div style="{_MUTED}margin-bottom:4px">{" · ".join(bits)}</div>'
    return _card(
        prompt=rec.prompt,
        model=rec.model,
        images=rec.images,
        meta=rec.meta,
        params=rec.params,
        usage=rec.usage,
        elapsed_s=rec.elapsed_s,
        status=rec.status,
        error=rec.error,
        synthetic=rec.synthetic,
        header=header,
    )


# --- grids -----------------------------------------------------------------------------------


def _grid_layout(names: Sequence[str]) -> tuple[str | None, list[str]]:
    """The column axis and the row axes: prompts (long text) make better rows than columns."""
    if not names:
        return None, []
    if len(names) == 1:
        return (None, list(names)) if names[0] == "prompt" else (names[0], [])
    col = next((n for n in names if n != "prompt"), names[0])
    return col, [n for n in names if n != col]


def _axis_label(name: str, value: Any) -> str:
    text = _short(str(value), 80) if name == "prompt" else str(value)
    return f'<span style="{_MUTED}">{esc(name)}=</span>{esc(text)}'


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
        return f'<div style="{_MUTED}padding:8px">{esc(status or "pending")}</div>'
    if not gen.ok:
        label = _status_badge(gen.status)
        box = _error_box(str(gen.error) if gen.error else None, 200)
        # As wide as an image would be, so one failure does not stretch its whole column.
        return f'{label}<div style="max-width:{px}px">{box}</div>'
    pics = "".join(
        _img_tag(_preview_uri(img, px), px, gen.prompt)
        + f"<div>{_file_link(img.path, label='original')}</div>"
        for img in gen.images
    )
    caption = " · ".join(p for p in (f"{gen.elapsed_s:.1f} s", _tokens(gen.usage)) if p)
    extra = _synthetic_badge() if gen.synthetic else ""
    note = f'<div style="{_MUTED}">{esc(status)}</div>' if status else ""
    return f'{pics}<div style="{_MUTED}">{extra}{esc(caption)}</div>{note}'


def grid_html(
    grid: Grid,
    cell_status: Mapping[int, str] | Sequence[str] | None = None,
    finished: dict[int, str] | None = None,
) -> str:
    """A labelled table of a grid: the first non-prompt axis across, the other axes down.

    ``cell_status`` (by cell index) is shown in pending cells, e.g. ``"waiting 5 s (HTTP
    429)"``; failed cells show their short error. ``finished`` caches the HTML of finished
    cells by index across calls, so a live view that redraws the grid as cells finish makes
    each cell's preview once.
    """
    names = list(grid.axes)
    px = min(active().thumbnail_px, 256)
    col_axis, row_axes = _grid_layout(names)
    where = {tuple(repr(c.coords.get(n)) for n in names): (i, c) for i, c in enumerate(grid.cells)}
    columns = grid.axes[col_axis] if col_axis else [None]
    rows = list(itertools.product(*(grid.axes[n] for n in row_axes))) or [()]

    def cell_at(col_value: Any, row_values: tuple[Any, ...]) -> str:
        coords = dict(zip(row_axes, row_values, strict=True))
        if col_axis is not None:
            coords[col_axis] = col_value
        found = where.get(tuple(repr(coords.get(n)) for n in names))
        if found is None:
            return f'<td style="{_CELL}"></td>'
        index, cell = found
        status = _status_for(cell_status, index)
        if finished is None or cell.generation is None or status is not None:
            return f'<td style="{_CELL}">{_grid_cell(cell, status, px)}</td>'
        if index not in finished:
            finished[index] = _grid_cell(cell, None, px)
        return f'<td style="{_CELL}">{finished[index]}</td>'

    corner = esc(" / ".join(row_axes))
    head = "".join(
        f'<th style="{_CELL}">{_axis_label(col_axis, v) if col_axis else ""}</th>' for v in columns
    )
    body = []
    for row in rows:
        label = "<br>".join(_axis_label(n, v) for n, v in zip(row_axes, row, strict=True))
        cells = "".join(cell_at(v, row) for v in columns)
        body.append(f'<tr><th style="{_CELL}">{label}</th>{cells}</tr>')
    return (
        f'<div class="cometnb-grid" style="{_FONT}">{_grid_summary(grid)}'
        f'<table style="{_TABLE}">'
        f'<thead><tr><th style="{_CELL}">{corner}</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _grid_summary(grid: Grid) -> str:
    gens = grid.generations
    failed = sum(1 for g in gens if not g.ok)
    shape = "×".join(str(n) for n in grid.shape) or "1"
    text = f"{shape} grid · {len(gens)}/{len(grid.cells)} done" + (
        f" · {failed} failed" if failed else ""
    )
    badge = _synthetic_badge() if any(g.synthetic for g in gens) else ""
    return f'<div style="margin-bottom:4px">{badge}{esc(text)}</div>{_grid_shared(grid)}'


def _grid_shared(grid: Grid) -> str:
    """What every cell sends alike: the prompt (unless it is an axis), then other settings."""
    bodies = [cell.request.to_body() for cell in grid.cells]
    if len(bodies) < 2:
        return ""  # a lone cell's card says it all
    shared = {k: v for k, v in bodies[0].items() if all(k in b and b[k] == v for b in bodies)}
    prompt = shared.pop("prompt", None)
    settings = " · ".join(f"{k}={_short(str(v), 40)}" for k, v in shared.items())
    parts = [f"<div>{esc(_short(str(prompt), 300))}</div>" if prompt is not None else ""]
    if settings:
        parts.append(f'<div style="{_MUTED}">{esc(settings)}</div>')
    return f'<div class="cometnb-grid-shared" style="margin-bottom:4px">{"".join(parts)}</div>'


# --- history views ---------------------------------------------------------------------------


def history_html(records: Sequence[Record], limit: int = HISTORY_ROWS) -> str:
    """A compact table of records, newest first, at most ``limit`` rows plus an "N more" line."""
    if not records:
        return f'<div style="{_FONT}{_MUTED}">The history is empty.</div>'
    shown = list(reversed(records[-limit:])) if limit > 0 else []
    heads = ("", "when", "prompt", "model", "settings", "status", "time", "tags", "id")
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in heads)
    rows = "".join(_history_row(r) for r in shown)
    more = len(records) - len(shown)
    tail = f'<div style="{_MUTED}margin-top:4px">… {more} more (older)</div>' if more else ""
    return (
        f'<div class="cometnb-history" style="{_FONT}"><div>{len(records)} record(s)</div>'
        f'<table style="{_TABLE}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>{tail}</div>"
    )


def _history_row(rec: Record) -> str:
    images = rec.images
    thumb = (
        _img_tag(_thumb_uri(images[0], THUMB_PX), THUMB_PX // 2 * 2, rec.prompt) if images else ""
    )
    settings = _short(_settings_text(rec.params), 120)
    status = _status_badge(rec.status) + (_synthetic_badge() if rec.synthetic else "")
    if rec.error:
        status += f'<div style="color:#c62828">{esc(_short(rec.error, 160))}</div>'
    cells = (
        thumb,
        esc(_local_time(rec.created_at)),
        f'<span title="{esc(rec.prompt)}">{esc(_short(rec.prompt, 160))}</span>',
        esc(rec.model),
        esc(settings),
        status,
        esc(f"{rec.elapsed_s:.1f} s"),
        esc(", ".join(rec.tags)),
        f"<code>{esc(rec.id)}</code>",
    )
    nowrap = (1, 3, 6, 8)  # when, model, time, id: short values that read badly when wrapped
    return (
        "<tr>"
        + "".join(
            f'<td style="{_CELL}{"white-space:nowrap;" if i in nowrap else ""}">{c}</td>'
            for i, c in enumerate(cells)
        )
        + "</tr>"
    )


def compare_html(records: Sequence[Record]) -> str:
    """Records side by side: same-size previews aligned, differing settings highlighted."""
    px = min(active().thumbnail_px, 320)
    shared, differing = split_settings(records)
    head = "".join(
        f'<th style="{_CELL}"><code>{esc(r.id)}</code><br>'
        f'<span style="{_MUTED}">{esc(_local_time(r.created_at))}</span></th>'
        for r in records
    )
    pictures = "".join(f'<td style="{_CELL}">{_compare_images(r, px)}</td>' for r in records)
    rows = [f'<tr><th style="{_CELL}"></th>{pictures}</tr>']
    for key, values in differing.items():
        cells = "".join(
            f'<td style="{_CELL}{_HIGHLIGHT}">{esc(_short(_text(v), 300))}</td>' for v in values
        )
        rows.append(f'<tr><th style="{_CELL}{_HIGHLIGHT}">{esc(key)}</th>{cells}</tr>')
    outcome = "".join(f'<td style="{_CELL}">{_outcome(r)}</td>' for r in records)
    rows.append(f'<tr><th style="{_CELL}">result</th>{outcome}</tr>')
    listed = "".join(
        f"<li><b>{esc(k)}</b>: {esc(_short(_text(v), 600))}</li>" for k, v in shared.items()
    )
    same = f"<div>Same in all:</div><ul style='margin:2px 0'>{listed}</ul>" if listed else ""
    return (
        f'<div class="cometnb-compare" style="{_FONT}">'
        f'<table style="{_TABLE}"><thead><tr><th style="{_CELL}"></th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{same}</div>"
    )


def _text(value: Any) -> str:
    return "(not sent)" if value is None else str(value)


def _compare_images(rec: Record, px: int) -> str:
    if not rec.images:
        return _error_box(rec.error or rec.status, 300)
    return "".join(
        _img_tag(_preview_uri(img, px), px, rec.prompt, fixed=True)
        + f"<div>{_file_link(img.path, label='original')}</div>"
        for img in rec.images
    )


def _outcome(rec: Record) -> str:
    parts = [f"{rec.elapsed_s:.1f} s", _tokens(rec.usage)]
    badges = _status_badge(rec.status) + (_synthetic_badge() if rec.synthetic else "")
    return badges + esc(" · ".join(p for p in parts if p))


# --- the exported gallery --------------------------------------------------------------------

_GALLERY_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:16px;color:#222}
h1{font-size:20px} .recs{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));
gap:14px} .rec{border:1px solid #ccc;border-radius:6px;padding:10px}
.rec img{max-width:100%;height:auto;display:block;margin:0 0 6px}
.pics{display:flex;gap:8px;flex-wrap:wrap}
.prompt{white-space:pre-wrap;font-size:14px;margin:6px 0} .meta{color:#555;font-size:12px}
table.kv td{padding:1px 8px 1px 0;vertical-align:top;font-size:12px}
"""


def gallery_html(records: Iterable[Record], title: str = "cometnb gallery") -> str:
    """A complete, self-contained HTML page: previews inline, no script, no external URL."""
    recs = list(records)
    cards = "".join(_gallery_card(r) for r in recs)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_GALLERY_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=meta>{len(recs)} record(s)</p>"
        f'<div class="recs">{cards}</div></body></html>\n'
    )


def _gallery_card(rec: Record) -> str:
    px = active().thumbnail_px
    pics = "".join(_gallery_figure(img, px, rec.prompt) for img in rec.images)
    if not rec.ok:
        pics += _error_box(rec.error)
    facts: list[tuple[str, Any]] = [
        ("id", rec.id),
        ("created", _local_time(rec.created_at)),
        ("model", rec.model),
        ("status", rec.status),
        ("settings", _settings_text(rec.params) or "defaults"),
        ("time", f"{rec.elapsed_s:.1f} s"),
    ]
    if rec.usage:
        facts.append(("usage", _settings_text(_flat(rec.usage))))
    if rec.tags:
        facts.append(("tags", ", ".join(rec.tags)))
    if rec.origin:
        facts.append(("re-run of", rec.origin))
    if rec.synthetic:
        facts.append(("source", "synthetic (simulator)"))
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts)
    return (
        f'<div class="rec"><div class="pics">{pics}</div>'
        f'<div class="prompt">{esc(rec.prompt)}</div><table class="kv">{rows}</table></div>'
    )


def _gallery_figure(img: GeneratedImage, px: int, prompt: str) -> str:
    revised = (
        f"<div class=meta>revised: {esc(img.revised_prompt)}</div>" if img.revised_prompt else ""
    )
    tag = _img_tag(_preview_uri(img, px), px, prompt, fluid=True)
    return (
        f'<figure style="margin:0;min-width:0;max-width:{px}px">{tag}'
        f"<figcaption class=meta>{esc(img.path.name if img.path else '')} · "
        f"{img.width}×{img.height} {esc(img.format)}</figcaption>{revised}</figure>"
    )


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
