"""Cards: one image, one generation, one history record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cometnb._core.settings import active
from cometnb._views.common import (
    CARD,
    FONT,
    MUTED,
    SOURCE_PX,
    cost_html,
    cost_of,
    error_box,
    esc,
    file_links,
    img_tag,
    local_time,
    one_line,
    one_line_box,
    origin_label,
    preview_uri,
    status_badge,
    synthetic_badge,
    tokens,
    with_sources,
)
from cometnb._views.credentials import image_mark

if TYPE_CHECKING:
    from cometnb._core.generations import GeneratedImage, Generation
    from cometnb._storage.records import Record

__all__ = ["generation_html", "image_html", "images_row", "record_html"]


def image_html(img: GeneratedImage, px: int | None = None, *, link: bool = True) -> str:
    """One image: its preview, format and size, and where the original is on disk.

    The caption stays on one line however long the file name (cut with "…", the whole name
    and path on hover), so it never wraps into a block under a small thumbnail.
    """
    px = px or active().thumbnail_px
    name_link, uri_link = file_links(img.path, link=link)
    facts = f"{esc(img.format)} {img.width}×{img.height} ·"
    name = img.path.name if img.path else "not stored"
    caption = one_line_box(facts, name_link, uri_link, f"{facts} {name}", px)
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


# Several images of one request (-n 3) are a wrapping row of thumbnails this size at most,
# not a column of full previews: three 512 px images stacked made a 1,760 px card.
TILE_PX = 256
TILES_PER_ROW = 4


def images_row(images: Sequence[GeneratedImage], px: int, *, link: bool = True) -> str:
    """A request's images: one at ``px``; several as a wrapping row of thumbnails."""
    if len(images) <= 1:
        return "".join(image_html(img, px, link=link) for img in images)
    tile = min(px, TILE_PX)
    tiles = "".join(image_html(img, tile, link=link) for img in images)
    return f'<div class="cometnb-images" style="display:flex;flex-wrap:wrap;gap:4px">{tiles}</div>'


def _images_width(count: int, px: int) -> int:
    """How wide the images of a card are at most (a row of tiles, or one preview)."""
    if count <= 1:
        return px
    tile = min(px, TILE_PX)
    return (tile + 8) * min(count, TILES_PER_ROW)


def generation_html(gen: Generation) -> str:
    """A card for one generation: previews, caption, links to originals, errors, badges."""
    return _card(
        gen,
        params=gen.request,
        status=gen.state,
        error=str(gen.error) if gen.error is not None else None,
        sources=getattr(gen.request, "images", ()),
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
        rec,
        params=rec.params,
        status=rec.status,
        error=rec.error,
        sources=rec.sources,
        header=header,
    )


def _card(
    shown: Generation | Record,
    *,
    params: Mapping[str, Any],
    status: str,
    error: str | None,
    sources: Sequence[Any],
    header: str = "",
) -> str:
    """The card both draw: what a generation and its record hold alike is read from ``shown``;
    where they differ (the request sent or kept, the state's name, the error's form) is given."""
    px = active().thumbnail_px
    badges = (synthetic_badge() if shown.synthetic else "") + (
        status_badge(status) if status != "ok" else ""
    )
    images = shown.images
    body = images_row(images, px)
    if status != "ok":
        body += error_box(error)
    caption = _caption(shown.model, shown.meta, params, images, shown.elapsed_s, shown.usage)
    cost = cost_of(shown)
    if cost is not None:
        caption += " · " + cost_html(cost)
    # An edit shows its inputs, an arrow, then the result, in one row: the card widens for them.
    width = _images_width(len(images), px) + 40 + (SOURCE_PX + 40 if sources else 0)
    return (
        f'<div class="cometnb-card" style="{CARD}max-width:{width}px">'
        f"{header}{badges}{with_sources(sources, f'<div>{body}</div>')}"
        f'<div style="margin:4px 0;white-space:pre-wrap">{esc(one_line(shown.prompt, 600))}</div>'
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
