"""Registers every view with the session's display service (the package root's view loader
calls :func:`install` on the first render)."""

from __future__ import annotations

from cometnb._core.session import register_view
from cometnb._views.cards import generation_html, image_html, record_html
from cometnb._views.gallery import gallery_html
from cometnb._views.grid import grid_html
from cometnb._views.history import compare_html, history_html
from cometnb._views.model_table import models_html

__all__ = ["install"]


def install() -> None:
    """Make these functions the HTML of images, generations, grids, records and histories."""
    register_view("image", image_html)
    register_view("generation", generation_html)
    register_view("grid", grid_html)
    register_view("record", record_html)
    register_view("history", history_html)
    register_view("compare", compare_html)
    register_view("gallery", gallery_html)
    register_view("models", models_html)
