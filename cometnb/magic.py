"""The ``%%cometimg`` cell magic and ``%cometimg_key`` (``%load_ext cometnb`` loads them).

The implementation lives in :mod:`cometnb._notebook.magics`; this public module keeps the names
code outside the package imports.
"""

from __future__ import annotations

from cometnb._notebook.magics import (
    CometImg,
    load_ipython_extension,
    parse_argstring,
    unload_ipython_extension,
)

__all__ = ["CometImg", "load_ipython_extension", "parse_argstring", "unload_ipython_extension"]
