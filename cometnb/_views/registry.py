"""Registers every view with the core's display hook (the package root calls :func:`install`)."""

from __future__ import annotations

from cometnb._core import hooks
from cometnb._views.cards import generation_html, image_html, record_html
from cometnb._views.gallery import gallery_html
from cometnb._views.grid import grid_html
from cometnb._views.history import compare_html, history_html

__all__ = ["install"]


def install() -> None:
    """Make these functions the HTML of images, generations, grids, records and histories."""
    hooks.register_view("image", image_html)
    hooks.register_view("generation", generation_html)
    hooks.register_view("grid", grid_html)
    hooks.register_view("record", record_html)
    hooks.register_view("history", history_html)
    hooks.register_view("compare", compare_html)
    hooks.register_view("gallery", gallery_html)
