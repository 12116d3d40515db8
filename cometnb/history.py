"""history(path=None) -> History

The active history: every prompt, setting and image generated here, kept on disk across kernel
restarts. With ``path``, the history in that folder. One instance per folder per process.

Example::

    import cometnb
    h = cometnb.history()          # ./cometnb-history, or %config CometImg.history_dir
    h[-1]                          # the latest record
    h.find(text="fox", status="ok")
    h.compare(h[-2], h[-1])

This module is itself callable (``cometnb.history()``), so the function and the module can share
the name ``cometnb.history`` whichever is imported first.
"""

from __future__ import annotations

import os
import sys
import types

from cometnb._storage.folder import History, history
from cometnb._storage.records import Comparison, Record

__all__ = ["Comparison", "History", "Record", "history"]


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`history`.

    Importing the submodule ``cometnb.history`` binds the module to that package attribute,
    hiding the function; calling the module forwards to it, so both spellings work.
    """

    def __call__(self, path: str | os.PathLike[str] | None = None) -> History:
        """history(path=None) -> History: the active history, or the one at ``path``."""
        return history(path)


sys.modules[__name__].__class__ = _CallableModule
