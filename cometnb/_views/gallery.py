"""The exported gallery: one complete, self-contained HTML page of records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cometnb._core.settings import active
from cometnb._views.common import (
    data_uri,
    error_box,
    esc,
    img_tag,
    local_time,
    origin_label,
    settings_text,
    total_html,
    with_sources,
)
from cometnb._views.credentials import image_mark

if TYPE_CHECKING:
    from cometnb._core.generations import GeneratedImage
    from cometnb._storage.records import Record

__all__ = ["gallery_html"]

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
        f"<h1>{esc(title)}</h1><p class=meta>{len(recs)} record(s)</p>{total_html(recs)}"
        f'<div class="recs">{cards}</div></body></html>\n'
    )


def _gallery_card(rec: Record) -> str:
    px = active().thumbnail_px
    pics = "".join(_gallery_figure(img, px, rec.prompt) for img in rec.images)
    if not rec.ok:
        pics += error_box(rec.error)
    pics_html = f'<div class="pics">{pics}</div>'
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in _facts(rec))
    return (
        f'<div class="rec">{with_sources(rec.sources, pics_html)}'
        f'<div class="prompt">{esc(rec.prompt)}</div><table class="kv">{rows}</table></div>'
    )


def _facts(rec: Record) -> list[tuple[str, Any]]:
    """The label/value rows under a gallery card's prompt."""
    facts: list[tuple[str, Any]] = [
        ("id", rec.id),
        ("created", local_time(rec.created_at)),
        ("model", rec.model),
        ("status", rec.status),
        ("settings", settings_text(rec.params) or "defaults"),
        ("time", f"{rec.elapsed_s:.1f} s"),
        ("cost", rec.cost.label),
    ]
    if rec.usage:
        facts.append(("usage", settings_text(_flat(rec.usage))))
    if rec.tags:
        facts.append(("tags", ", ".join(rec.tags)))
    if rec.origin:
        facts.append(("origin", origin_label(rec.origin)))
    if rec.parent:
        facts.append(("edit of", rec.parent))
    if rec.synthetic:
        facts.append(("source", "synthetic (simulator)"))
    return facts


def _gallery_figure(img: GeneratedImage, px: int, prompt: str) -> str:
    revised = (
        f"<div class=meta>revised: {esc(img.revised_prompt)}</div>" if img.revised_prompt else ""
    )
    tag = img_tag(_labelled_preview(img, px), px, prompt, fluid=True)
    return (
        f'<figure style="margin:0;min-width:0;max-width:{px}px">{tag}'
        f"<figcaption class=meta>{esc(img.path.name if img.path else '')} · "
        f"{img.width}×{img.height} {esc(img.format)}</figcaption>{image_mark(img)}"
        f"{revised}</figure>"
    )


def _labelled_preview(img: GeneratedImage, px: int) -> str | None:
    """The embedded preview as a data URI, labelled AI-generated with its provenance like every
    copy that leaves the history. A data URI has no room for a sidecar, so the label goes in
    the file and a manifest (a small original is embedded as it is) is removed, which the
    copy says; the card's mark tells what the original's Content Credentials were."""
    from cometnb._core.errors import CometError
    from cometnb._core.provenance import file_has_store, labelled_copy

    try:
        data, _mime = img.preview(px)
    except (OSError, CometError, ValueError):
        return None
    signed = img.path is not None and file_has_store(img.path)
    copy = labelled_copy(data, img.source, keep_c2pa=False, original_has_c2pa=signed)
    return data_uri(copy.data)


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested usage blocks as dotted keys: ``{"input_tokens_details.image_tokens": 0}``."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
