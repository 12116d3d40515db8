"""The panel seen without a live kernel: a static HTML summary shown beside the widget.

A widget needs a kernel (or saved widget state and a CDN) to render; nbconvert HTML without
widget state, GitHub and a notebook reopened without running it show only what the output
holds. So displaying a panel makes two outputs: the widget (its plain-text form one readable
line), and this summary, with its own display id, updated as results arrive. The widget's own
stylesheet hides the summary wherever the widget renders (Lab, Notebook 7, Voila, classic),
so a live panel is not shown twice; where it does not render, the summary is what is seen.

What nbconvert picks (``WidgetsDataTypeFilter``): the widget view only when the notebook
saved the widget's state, else the next mimetype (``text/plain`` for the widget output,
``text/html`` for this one). JupyterLab shows "Error displaying widget: model not found" for
a widget output without state, and this summary below it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cometnb._core.text import clip

if TYPE_CHECKING:
    from cometnb._core.generations import Generation

__all__ = ["HIDE_WHEN_LIVE", "STATIC_CLASS", "static_html"]

STATIC_CLASS = "cometnb-static"
STATIC_PX = 128  # longer side of each result shown in the summary
SHOWN = 8  # newest results embedded (previews of a few kB each, never the originals)
# Part of the panel's stylesheet: once the widget renders, its summary output is hidden.
HIDE_WHEN_LIVE = (
    f".jp-OutputArea-child:has(.cometnb-panel) ~ .jp-OutputArea-child:has(.{STATIC_CLASS}),"
    f" .output_area:has(.cometnb-panel) ~ .output_area:has(.{STATIC_CLASS})"
    " { display: none !important; }"
)


def static_html(settings: str, prompt: str, results: Sequence[Generation], note: str) -> str:
    """The summary: the form's settings and prompt, the newest results as small images.

    ``results`` are newest first; ``note`` is the panel's last message (may be empty).
    """
    rows = [
        "<div style='font-weight:600'>cometnb panel "
        "<span style='font-weight:400;color:#666'>(static view: run the notebook for the live "
        "panel)</span></div>",
        f"<div><b>Settings</b>: {html.escape(settings)}</div>",
    ]
    if prompt.strip():
        rows.append(f"<div><b>Prompt</b>: {html.escape(clip(prompt, 300))}</div>")
    if note:
        rows.append(f"<div style='color:#555'>{html.escape(clip(note, 300))}</div>")
    shown = list(results)[:SHOWN]
    if shown:
        rows.append(f"<div><b>Latest results</b> ({len(shown)} of {len(results)} shown):</div>")
        rows.append(
            "<div style='display:flex;flex-wrap:wrap;gap:8px'>"
            + "".join(_result(gen) for gen in shown)
            + "</div>"
        )
    else:
        rows.append("<div style='color:#666'>No results made in this panel yet.</div>")
    return (
        f"<div class='{STATIC_CLASS}' style='border:1px solid #ddd;border-radius:6px;"
        "padding:8px 10px;font-family:sans-serif;font-size:13px;line-height:1.4'>"
        + "".join(rows)
        + "</div>"
    )


def _result(gen: Generation) -> str:
    from cometnb._views.thumbs import thumb_uri

    caption = html.escape(clip(gen.prompt, 60))
    uri = thumb_uri(gen.images[0], STATIC_PX) if gen.images else None
    if uri is None:
        pic = (
            f"<div style='width:{STATIC_PX}px;height:{STATIC_PX // 2}px;background:#f3f3f3;"
            "display:flex;align-items:center;justify-content:center;color:#999'>"
            f"{html.escape(gen.state)}</div>"
        )
    else:
        pic = (
            f"<img src='{uri}' alt='{caption}' style='max-width:{STATIC_PX}px;"
            f"max-height:{STATIC_PX}px;border-radius:4px'/>"
        )
    return (
        f"<figure style='margin:0;width:{STATIC_PX}px'>{pic}"
        f"<figcaption style='font-size:11px;color:#444'>{caption}</figcaption></figure>"
    )
