"""The one thumbnail helper: history lists (the table view and the panel's browser) use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cometnb._core.errors import CometError
from cometnb._views.common import data_uri

if TYPE_CHECKING:
    from cometnb._core.generations import GeneratedImage

__all__ = ["THUMB_PX", "thumb_uri"]

THUMB_PX = 96  # longer side of a history-list thumbnail, in pixels


def thumb_uri(img: GeneratedImage, px: int = THUMB_PX) -> str | None:
    """A data URI of a thumbnail no larger than ``px``; ``None`` when the image cannot be read.

    Made from the stored preview (a few kB) so a list of fifty records never decodes fifty
    multi-megabyte originals; the original is read only when no preview was stored.

    Example::

        >>> thumb_uri(record.images[0])  # doctest: +SKIP
        'data:image/jpeg;base64,/9j/4AAQ…'
    """
    from cometnb._core.images import make_preview

    source = img.preview_path
    try:
        data = source.read_bytes() if source is not None and source.exists() else img.data
        return data_uri(make_preview(data, px)[0])
    except (OSError, CometError, ValueError):
        return None
