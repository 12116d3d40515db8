"""Pieces every view shares: escaping, inline styles, badges, previews, links and captions.

Plain HTML with inline styles and no JavaScript, so the same output works in JupyterLab,
Notebook 7, VS Code and a saved file. Everything a user or a model wrote (prompts, revised
prompts, tags, errors, settings) goes through :func:`esc`. Images are embedded as data URIs of
small previews (``thumbnail_px``), never the multi-megabyte originals; those stay on disk and
are linked.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cometnb._core.errors import CometError
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
    "TABLE",
    "data_uri",
    "error_box",
    "esc",
    "file_link",
    "file_links",
    "img_tag",
    "local_time",
    "one_line",
    "one_line_box",
    "preview_uri",
    "settings_text",
    "status_badge",
    "synthetic_badge",
    "tokens",
]

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
    megabytes, and notebooks stay light. ``label`` replaces the file name as the visible text
    (narrow grid cells).
    """
    if path is None:
        return f'<span style="{MUTED}">not stored</span>', ""
    text = esc(label or path.name)
    if not link:
        return f'<code title="{esc(path)}">{text}</code>', ""
    absolute = Path(os.path.abspath(path))
    disk = (
        f'<a class="cometnb-file-uri" href="{esc(absolute.as_uri())}" target="_blank" '
        f'style="{MUTED}" title="{esc(absolute)} (file:// link: works from a saved or '
        f'exported HTML page on this machine)">file</a>'
    )
    rel = _relative(path)
    if rel is None:  # outside the working directory: only the absolute link can reach it
        return f'<code title="{esc(path)}">{text}</code>', disk
    href = esc(quote(rel.replace(os.sep, "/")))
    return f'<a href="{href}" target="_blank" title="{esc(path)}">{text}</a>', disk


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
