"""Views: pure functions from core and storage objects to HTML strings. Nothing below imports
them; ``_repr_html_`` reaches them through the display hook (``_core.display``)."""
