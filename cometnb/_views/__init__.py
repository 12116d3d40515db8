"""Views: pure functions from core and storage objects to HTML strings. Nothing below imports
them; ``_repr_html_`` reaches them through the session's view registry (``_core.session.render``),
which :func:`install` fills: the one place views are registered.

- ``common``: escaping, inline styles, badges, previews, links, captions, thumbnails, cost
  lines and an edit's source strip, shared by all views
- ``credentials``: the Content Credentials mark
- ``cards``: one image, one generation, one record
- ``grid``: a parameter sweep as a labelled table
- ``history``: the record table and the side-by-side comparison
- ``gallery``: the self-contained exported page
- ``model_table``: ``cometnb.models()``
"""

from __future__ import annotations

__all__ = ["install"]


def install() -> None:
    """Make these functions the HTML of images, generations, grids, records, histories and the
    model table (the package root's view loader calls this on the first render)."""
    # Imported here, not at the top: importing one view module must not load them all.
    from cometnb._core.session import register_view
    from cometnb._views.cards import generation_html, image_html, record_html
    from cometnb._views.gallery import gallery_html
    from cometnb._views.grid import grid_html
    from cometnb._views.history import compare_html, history_html
    from cometnb._views.model_table import models_html

    register_view("image", image_html)
    register_view("generation", generation_html)
    register_view("grid", grid_html)
    register_view("record", record_html)
    register_view("history", history_html)
    register_view("compare", compare_html)
    register_view("gallery", gallery_html)
    register_view("models", models_html)
