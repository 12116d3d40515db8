"""Registers every view with the core's display hook (the package root calls :func:`install`)."""

from __future__ import annotations

from cometnb._core import hooks
from cometnb._views import render

__all__ = ["install"]


def install() -> None:
    """Make these functions the HTML of images, generations, grids, records and histories."""
    hooks.register_view("image", render.image_html)
    hooks.register_view("generation", render.generation_html)
    hooks.register_view("grid", render.grid_html)
    hooks.register_view("record", render.record_html)
    hooks.register_view("history", render.history_html)
    hooks.register_view("compare", render.compare_html)
    hooks.register_view("gallery", render.gallery_html)
