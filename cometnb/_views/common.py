"""Pieces every view shares: escaping, inline styles, badges, previews, links, captions, the
history-list thumbnail, cost lines and an edit's source strip.

Plain HTML with inline styles and no JavaScript, so the same output works in JupyterLab,
Notebook 7, VS Code and a saved file. Everything a user or a model wrote (prompts, revised
prompts, tags, errors, settings) goes through :func:`esc`. Images are embedded as data URIs of
small previews (``thumbnail_px``), never the multi-megabyte originals; those stay on disk and
are linked.

- Thumbnails (:func:`thumb_uri`): the one helper history lists (the table view and the panel's
  browser) use, made from the stored preview.
- Costs: a card's or cell's footer (``$0.053``, ``≈ $0.05``, ``cost unknown``) and a history's
  total; the basis and price table go in the tooltip.
- Sources → result: the small strip of input images an edit started from, shown beside it.
  Record cards, generation cards (while their request still carries the inputs), the
  comparison view and the HTML gallery use :func:`with_sources` (the strip, an arrow, then the
  result, in one row). A stored source's thumbnail comes from its file in the history folder;
  a mask is drawn over a checkerboard, so its transparent (editable) area shows instead of one
  black square; labels are escaped like every other user text.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cometnb._core.errors import CometError
from cometnb._core.images import make_preview
from cometnb._core.prices import Cost, format_spend, from_nanos, to_nanos
from cometnb._core.text import clip

if TYPE_CHECKING:
    from cometnb._core.generations import GeneratedImage

__all__ = [
    "BADGE",
    "CARD",
    "CELL",
    "ERROR_BOX",
    "FONT",
    "HIGHLIGHT",
    "MUTED",
    "ONE_LINE",
    "SOURCE_PX",
    "TABLE",
    "THUMB_PX",
    "cost_cell_html",
    "cost_html",
    "cost_of",
    "data_uri",
    "error_box",
    "esc",
    "file_link",
    "file_links",
    "img_tag",
    "local_time",
    "mask_preview",
    "one_line",
    "one_line_box",
    "preview_uri",
    "settings_text",
    "sources_html",
    "status_badge",
    "synthetic_badge",
    "thumb_uri",
    "tokens",
    "total_html",
    "with_sources",
]


if TYPE_CHECKING:
    from cometnb._core.generations import GeneratedImage


FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:12px;"
CARD = (
    "display:inline-block;vertical-align:top;border:1px solid rgba(128,128,128,.45);"
    "border-radius:6px;padding:8px;margin:4px;color:inherit;" + FONT
)
MUTED = "opacity:.75;"
CELL = "border:1px solid rgba(128,128,128,.35);padding:4px 6px;vertical-align:top;text-align:left;"
TABLE = "border-collapse:collapse;" + FONT
HIGHLIGHT = "background:#fff3b0;color:#000;"
ERROR_BOX = (
    "border:1px solid #d33;background:#fdecea;color:#611;border-radius:4px;padding:6px;"
    "margin:4px 0;white-space:pre-wrap;"
)
ONE_LINE = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis;"
BADGE = "display:inline-block;border-radius:3px;padding:0 5px;margin-right:4px;font-size:11px;"


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (runs of whitespace become one space), clipped to ``limit``."""
    return clip(" ".join(text.split()), limit)


def _badge(text: str, background: str, color: str = "#fff") -> str:
    return f'<span style="{BADGE}background:{background};color:{color}">{esc(text)}</span>'


def synthetic_badge() -> str:
    """The mark on anything the simulator made, so it is never mistaken for a real result."""
    return _badge("synthetic (simulator)", "#7a4fd6")


def status_badge(status: str) -> str:
    """A coloured ``ok`` / ``error`` / ``cancelled`` / ``not sent (budget)`` label."""
    colours = {
        "ok": "#2e7d32",
        "error": "#c62828",
        "cancelled": "#757575",
        "not sent (budget)": "#8d6e00",
    }
    return _badge(status, colours.get(status, "#555"))


def error_box(message: str | None, limit: int = 600) -> str:
    """An error message in a red box; one past ``limit`` characters shows its first words and
    opens to the whole text with a click (``<details>``: no script, works in a saved page), so
    an excerpt never hides the advice at its end."""
    text = " ".join((message or "failed").split())
    if len(text) <= limit:
        return f'<div class="cometnb-error" style="{ERROR_BOX}">{esc(text)}</div>'
    excerpt = clip(text, limit, at_word=True)
    return (
        f'<details class="cometnb-error" style="{ERROR_BOX}">'
        f'<summary style="cursor:pointer">{esc(excerpt)} '
        f'<span style="text-decoration:underline">show the full error</span></summary>'
        f'<div style="margin-top:4px">{esc(text)}</div></details>'
    )


def data_uri(data: bytes) -> str:
    """``data:<mime>;base64,…`` for ``data`` (Pillow's module loads only when a view draws)."""
    from cometnb._core.images import data_uri as _data_uri

    return _data_uri(data)


def preview_uri(img: GeneratedImage, px: int) -> str | None:
    """A data URI of a preview no larger than ``px``; ``None`` when the file is gone."""
    try:
        data, _mime = img.preview(px)
    except (OSError, CometError, ValueError):
        return None
    return data_uri(data)


def img_tag(uri: str | None, px: int, alt: str, *, fixed: bool = False, fluid: bool = False) -> str:
    """An inline preview: at most ``px`` (``fixed``: exactly a px box, for aligned comparisons;
    ``fluid``: as wide as its container allows, for the gallery page)."""
    if uri is None:
        box = f"width:{px}px;height:{px // 2}px;"
        return (
            f'<div style="{box}{MUTED}display:flex;align-items:center;justify-content:center;'
            f'border:1px dashed rgba(128,128,128,.6)">image file missing</div>'
        )
    if fixed:
        size = f"width:{px}px;height:{px}px;object-fit:contain;"
    elif fluid:
        size = "max-width:100%;height:auto;"
    else:
        size = f"max-width:{px}px;max-height:{px}px;"
    return f'<img src="{uri}" alt="{esc(one_line(alt, 200))}" style="{size}display:block">'


def file_link(path: Path | None, *, link: bool = True, label: str | None = None) -> str:
    """The original's location: the file name, linked, with the full path in its tooltip,
    then a small ``file`` link to its absolute URI (:func:`file_links`)."""
    name, uri = file_links(path, link=link, label=label)
    return f"{name} {uri}" if uri else name


def file_links(
    path: Path | None, *, link: bool = True, label: str | None = None
) -> tuple[str, str]:
    """The two links to an original: its name and a small ``file`` link (``""`` if none).

    Two, because no one link works everywhere: the name links relative to the working
    directory (JupyterLab, Notebook 7 and VS Code open it from the notebook's folder, and a
    page served over http cannot follow a ``file://`` link), and ``file`` holds the
    original's absolute ``file://`` URI, which still reaches it from an nbconvert or saved
    HTML page moved elsewhere on the same machine. Originals are never embedded: they are
    megabytes, and notebooks stay light; an SVG's links download it (``download``), never
    open it as a page. ``label`` replaces the file name as the visible text
    (narrow grid cells).
    """
    if path is None:
        return f'<span style="{MUTED}">not stored</span>', ""
    text = esc(label or path.name)
    if not link:
        return f'<code title="{esc(path)}">{text}</code>', ""
    absolute = Path(os.path.abspath(path))
    # An SVG opened as a page would run its scripts: its links download it instead.
    get = " download" if path.suffix.lower() == ".svg" else ' target="_blank"'
    disk = (
        f'<a class="cometnb-file-uri" href="{esc(absolute.as_uri())}"{get} '
        f'style="{MUTED}" title="{esc(absolute)} (file:// link: works from a saved or '
        f'exported HTML page on this machine)">file</a>'
    )
    rel = _relative(path)
    if rel is None:  # outside the working directory: only the absolute link can reach it
        return f'<code title="{esc(path)}">{text}</code>', disk
    href = esc(quote(rel.replace(os.sep, "/")))
    return f'<a href="{href}"{get} title="{esc(path)}">{text}</a>', disk


def one_line_box(head: str, cut: str, tail: str, title: str, px: int | None = None) -> str:
    """``head · cut tail`` on one line: ``cut`` (HTML; a long file name) shrinks with "…"
    where the line is too long, ``head`` and ``tail`` always show; ``title`` (plain text, the
    whole of it) shows on hover. As wide as its container, never wider: ``width:0`` with
    ``min-width:100%`` keeps a long name from widening the figure it sits under."""
    width = f"max-width:{px}px;" if px else ""
    return (
        f'<div title="{esc(title)}" style="display:flex;gap:4px;white-space:nowrap;'
        f'width:0;min-width:100%;{width}"><span style="flex:none">{head}</span>'
        f'<span style="{ONE_LINE}min-width:0">{cut}</span>'
        f'<span style="flex:none">{tail}</span></div>'
    )


def _relative(path: Path) -> str | None:
    try:
        rel = os.path.relpath(path, os.getcwd())
    except ValueError:  # another drive on Windows
        return None
    return None if rel.startswith("..") else rel


def tokens(usage: Mapping[str, Any] | None) -> str | None:
    """``"224 tokens"`` from a usage block; ``None`` when the API reported no total."""
    if not usage:
        return None
    total = usage.get("total_tokens")
    if total is None:
        return None
    return f"{total} tokens"


def local_time(when: datetime) -> str:
    """``when`` in the viewer's time zone, to the second."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def settings_text(params: Mapping[str, Any]) -> str:
    """``key=value, key=value`` for a record's settings."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def origin_label(origin: str) -> str:
    """Where a record came from: ``made in the magic`` / ``made in the panel`` /
    ``re-run of <record id>`` (a re-run's origin is the id of the record it repeats)."""
    if origin in ("magic", "panel"):
        return f"made in the {origin}"
    return f"re-run of {origin}"


THUMB_PX = 96  # longer side of a history-list thumbnail, in pixels


def thumb_uri(img: GeneratedImage, px: int = THUMB_PX) -> str | None:
    """A data URI of a thumbnail no larger than ``px``; ``None`` when the image cannot be read.

    Made from the stored preview (a few kB) so a list of fifty records never decodes fifty
    multi-megabyte originals; the original is read only when no preview was stored.

    Example::

        >>> thumb_uri(record.images[0])  # doctest: +SKIP
        'data:image/jpeg;base64,/9j/4AAQ…'
    """
    source = img.preview_path
    try:
        data = source.read_bytes() if source is not None and source.exists() else img.data
        return data_uri(make_preview(data, px)[0])
    except (OSError, CometError, ValueError):
        return None


def cost_of(item: Any) -> Cost | None:
    """The cost of a Generation or Record (``None`` for anything else, or when it cannot say)."""
    try:
        cost = getattr(item, "cost", None)
    except Exception:  # a view must draw even if pricing a damaged record fails
        return None
    return cost if isinstance(cost, Cost) else None


def cost_html(cost: Cost | None) -> str:
    """``<span class="cometnb-cost" title="basis">$0.053</span>``; empty for ``None``."""
    return "" if cost is None else _cost_span(cost, cost.label)


def _cost_span(cost: Cost, text: str, style: str = "") -> str:
    """The one cost element: ``text`` shown, the basis and price table in its tooltip."""
    tip = cost.basis + (f" ({cost.prices} prices)" if cost.prices else "")
    styled = f' style="{style}"' if style else ""
    return (
        f'<span class="cometnb-cost" title="{html.escape(tip, quote=True)}"{styled}>'
        f"{html.escape(text)}</span>"
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
    return _cost_span(cost, column_usd(cost), style="font-variant-numeric:tabular-nums")


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


SOURCE_PX = 96
_CHECK = ((255, 255, 255, 255), (204, 204, 204, 255))  # the usual "transparent" checkerboard
# One row that never wraps: the arrow must point at the result, not at an empty line end.
_ROW = "display:flex;align-items:center;gap:6px;flex-wrap:nowrap"


def with_sources(sources: Sequence[Any], result: str, px: int = SOURCE_PX) -> str:
    """``[inputs] → [result]`` in one row (the arrow points at the result); just ``result``
    for a plain generation. ``result`` is HTML (the images, or the error box)."""
    if not sources:
        return result
    return (
        f'<div class="cometnb-edit-pair" style="{_ROW}">{sources_html(sources, px)}'
        f'<div class="cometnb-edit-output" style="flex:1 1 auto;min-width:0">{result}</div></div>'
    )


def sources_html(sources: Sequence[Any], px: int = SOURCE_PX, *, arrow: str = "→") -> str:
    """The inputs as ``[thumb] [thumb] →`` (a grid of up to four columns for many inputs);
    empty text for a plain generation. ``arrow`` points where the result is.

    ``sources`` are stored :class:`~cometnb._storage.sources.Source` objects (``.image``,
    ``.role``, ``.label``) or, before storing, :class:`~cometnb._core.edit_inputs.ImageInput`.

    Example::

        >>> sources_html(history()[-1].sources)  # doctest: +SKIP
        '<div class="cometnb-sources" …'
    """
    if not sources:
        return ""
    figures = "".join(_figure(s, px) for s in sources)
    columns = min(4, math.ceil(len(sources) / 4))
    grid = f"display:grid;grid-template-columns:repeat({columns},auto);gap:4px"
    return (
        f'<div class="cometnb-sources" style="display:flex;align-items:center;gap:4px;'
        f'margin-bottom:4px;flex:none"><div style="{grid}">{figures}</div>'
        f'<span class="cometnb-arrow" style="font-size:20px;{MUTED}">{esc(arrow)}</span></div>'
    )


def _figure(source: Any, px: int) -> str:
    role = str(getattr(source, "role", "image"))
    what = role if role in _LAYERS else "from"
    label = str(source.label)
    came = f" ({source.record_id})" if getattr(source, "record_id", None) else ""
    # A mask's caption says how to read it (its label stays in the tooltip).
    shown = "mask: checks = edited area" if role == "mask" else f"{what} {label}"
    # Wrapped over up to three lines under the thumbnail ("from generation 2026…" cut to one
    # line read "from generatio…"); the whole label and record are in the tooltip.
    caption = esc(clip(" ".join(shown.split()), 80, at_word=True))
    return (
        f'<figure class="cometnb-source" title="{esc(label + came)}" '
        f'style="margin:0;display:inline-block">{img_tag(_uri(source, px), px, what + " " + label)}'
        f'<figcaption style="{MUTED}{_CAPTION}max-width:{px}px">{caption}</figcaption></figure>'
    )


# The inputs drawn over the first image (mostly transparent): shown over a checkerboard.
_LAYERS = ("mask", "markup")


_CAPTION = (
    "font-size:11px;line-height:1.25;overflow-wrap:anywhere;overflow:hidden;"
    "display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;"
)


def _uri(source: Any, px: int) -> str | None:
    if str(getattr(source, "role", "image")) in _LAYERS:  # transparent: over the checks
        try:
            data = source.image.data if hasattr(source, "image") else source.data
            return data_uri(mask_preview(data, px))
        except (CometError, ValueError, OSError):
            return None
    if hasattr(source, "image"):  # stored: read from the history folder
        return thumb_uri(source.image, px) if source.path is not None else None
    try:
        return data_uri(make_preview(source.data, px)[0])
    except (CometError, ValueError, OSError):
        return None


def mask_preview(data: bytes, px: int = SOURCE_PX) -> bytes:
    """A PNG of the mask over a checkerboard, at most ``px`` a side: the transparent (to be
    edited) area shows the checks, the kept area stays as drawn (opaque black for
    ``cometnb.mask``). Raises :class:`~cometnb._core.errors.CometError` for bytes that are not
    an image (or too many pixels to open)."""
    from PIL import Image

    from cometnb._core.images import open_image

    img, _fmt = open_image(data)  # checks the pixel cap before decoding
    with img:
        picture = img.convert("RGBA")
    picture.thumbnail((px, px))
    board = Image.new("RGBA", picture.size, _CHECK[0])
    square = max(4, px // 12)
    for y in range(0, picture.height, square):
        for x in range((y // square) % 2 * square, picture.width, 2 * square):
            board.paste(_CHECK[1], (x, y, x + square, y + square))
    board.alpha_composite(picture)
    buf = io.BytesIO()
    board.convert("RGB").save(buf, "PNG")
    return buf.getvalue()
