"""Views: pure functions from core and storage objects to HTML strings. Nothing below imports
them; ``_repr_html_`` reaches them through the display hook (``_core.hooks``, filled by
:mod:`cometnb._views.registry`).

- ``common``: escaping, inline styles, badges, previews, links, captions, thumbnails, cost
  lines and an edit's source strip, shared by all views
- ``credentials``: the Content Credentials mark
- ``cards``: one image, one generation, one record
- ``grid``: a parameter sweep as a labelled table
- ``history``: the record table and the side-by-side comparison
- ``gallery``: the self-contained exported page
- ``registry``: the one place views are registered with the display hook
"""
