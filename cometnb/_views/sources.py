"""Sources → result: the small strip of input images an edit started from, shown beside it.

Record cards, generation cards (while their request still carries the inputs), the comparison
view and the HTML gallery use it. A stored source's thumbnail comes from its file in the
history folder; labels are escaped like every other user text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cometnb._core.errors import CometError
from cometnb._core.previews import make_preview
from cometnb._views.common import MUTED, data_uri, esc, img_tag, one_line
from cometnb._views.thumbs import thumb_uri

__all__ = ["SOURCE_PX", "sources_html"]

SOURCE_PX = 96


def sources_html(sources: Sequence[Any], px: int = SOURCE_PX) -> str:
    """The inputs as ``[thumb] [thumb] →``; empty text for a plain generation.

    ``sources`` are stored :class:`~cometnb._storage.sources.Source` objects (``.image``,
    ``.role``, ``.label``) or, before storing, :class:`~cometnb._core.sources.ImageInput`.

    Example::

        >>> sources_html(history()[-1].sources)  # doctest: +SKIP
        '<div class="cometnb-sources" …'
    """
    if not sources:
        return ""
    figures = "".join(_figure(s, px) for s in sources)
    return (
        f'<div class="cometnb-sources" style="display:flex;align-items:center;gap:4px;'
        f'margin-bottom:4px">{figures}<span style="font-size:20px;{MUTED}">→</span></div>'
    )


def _figure(source: Any, px: int) -> str:
    role = str(getattr(source, "role", "image"))
    what = "mask" if role == "mask" else "from"
    label = str(source.label)
    came = f" ({source.record_id})" if getattr(source, "record_id", None) else ""
    caption = esc(one_line(f"{what} {label}", 40))
    return (
        f'<figure class="cometnb-source" title="{esc(label + came)}" '
        f'style="margin:0;display:inline-block">{img_tag(_uri(source, px), px, what + " " + label)}'
        f'<figcaption style="{MUTED}font-size:11px">{caption}</figcaption></figure>'
    )


def _uri(source: Any, px: int) -> str | None:
    if hasattr(source, "image"):  # stored: read from the history folder
        return thumb_uri(source.image, px) if source.path is not None else None
    try:
        return data_uri(make_preview(source.data, px)[0])
    except (CometError, ValueError, OSError):
        return None
