"""Cards: one image, one generation, one history record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cometnb._core.cost import Cost
from cometnb._core.settings import active
from cometnb._views.common import (
    CARD,
    FONT,
    MUTED,
    error_box,
    esc,
    file_link,
    img_tag,
    local_time,
    one_line,
    origin_label,
    preview_uri,
    status_badge,
    synthetic_badge,
    tokens,
)
from cometnb._views.costs import cost_html, cost_of
from cometnb._views.credentials import image_mark
from cometnb._views.sources import SOURCE_PX, with_sources

if TYPE_CHECKING:
    from cometnb._core.models import GeneratedImage, Generation
    from cometnb._storage.records import Record

__all__ = ["generation_html", "image_html", "record_html"]


def image_html(img: GeneratedImage, px: int | None = None, *, link: bool = True) -> str:
    """One image: its preview, format and size, and where the original is on disk."""
    px = px or active().thumbnail_px
    caption = f"{esc(img.format)} {img.width}×{img.height} · {file_link(img.path, link=link)}"
    revised = (
        f'<div style="{MUTED}max-width:{px}px">revised: {esc(img.revised_prompt)}</div>'
        if img.revised_prompt
        else ""
    )
    tag = img_tag(preview_uri(img, px), px, img.revised_prompt or "generated image")
    return (
        f'<figure class="cometnb-image" style="margin:0 4px 4px 0;display:inline-block;'
        f'vertical-align:top;{FONT}">{tag}'
        f'<figcaption style="{MUTED}">{caption}</figcaption>{image_mark(img)}{revised}</figure>'
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
        status=gen.state,
        error=str(gen.error) if gen.error is not None else None,
        synthetic=gen.synthetic,
        sources=getattr(gen.request, "images", ()),
        cost=cost_of(gen),
    )


def record_html(rec: Record) -> str:
    """A card for one history record: the generation card plus id, time, tags and origin."""
    bits = [f"<b>{esc(rec.id)}</b>", esc(local_time(rec.created_at))]
    if rec.tags:
        bits.append("tags: " + ", ".join(esc(t) for t in rec.tags))
    if rec.origin:
        bits.append(esc(origin_label(rec.origin)))
    if rec.parent:
        bits.append(f"edit of {esc(rec.parent)}")
    header = f'<div style="{MUTED}margin-bottom:4px">{" · ".join(bits)}</div>'
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
        sources=rec.sources,
        cost=cost_of(rec),
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
    sources: Sequence[Any] = (),
    link: bool = True,
    cost: Cost | None = None,
) -> str:
    px = active().thumbnail_px
    badges = (synthetic_badge() if synthetic else "") + (
        status_badge(status) if status != "ok" else ""
    )
    body = "".join(image_html(img, px, link=link) for img in images)
    if status != "ok":
        body += error_box(error)
    caption = _caption(model, meta, params, images, elapsed_s, usage)
    if cost is not None:
        caption += " · " + cost_html(cost)
    # An edit shows its inputs, an arrow, then the result, in one row: the card widens for them.
    width = px * max(1, len(images)) + 40 + (SOURCE_PX + 40 if sources else 0)
    return (
        f'<div class="cometnb-card" style="{CARD}max-width:{width}px">'
        f"{header}{badges}{with_sources(sources, f'<div>{body}</div>')}"
        f'<div style="margin:4px 0;white-space:pre-wrap">{esc(one_line(prompt, 600))}</div>'
        f'<div style="{MUTED}">{caption}</div></div>'
    )


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
        tokens(usage),
    ]
    return " · ".join(esc(p) for p in parts if p)
