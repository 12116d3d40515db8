"""``cometnb.panel()``: the ipywidgets panel (form, Generate/Cancel, results, history browser).

The implementation lives in :mod:`cometnb._notebook.panel`; this public module keeps the names
code outside the package imports.
"""

from __future__ import annotations

from cometnb._notebook.panel import Panel, panel

__all__ = ["Panel", "panel"]
