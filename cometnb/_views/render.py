"""Old import path of the views, kept only until the callers outside ``_views`` import the
modules that now hold them (``cards``, ``grid``, ``history``, ``gallery``); then delete it."""

from __future__ import annotations

from cometnb._storage.compare import split_settings
from cometnb._views.cards import generation_html, image_html, record_html
from cometnb._views.common import esc
from cometnb._views.gallery import gallery_html
from cometnb._views.grid import grid_html
from cometnb._views.history import HISTORY_ROWS, compare_html, history_html
from cometnb._views.thumbs import THUMB_PX

__all__ = [
    "HISTORY_ROWS",
    "THUMB_PX",
    "compare_html",
    "esc",
    "gallery_html",
    "generation_html",
    "grid_html",
    "history_html",
    "image_html",
    "record_html",
    "split_settings",
]
