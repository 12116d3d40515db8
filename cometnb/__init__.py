"""cometnb: image generation as a first-class notebook activity.

``%load_ext cometnb`` gives the ``%%cometimg`` cell magic; ``cometnb.panel()`` a widget panel;
``cometnb.history()`` every prompt, setting and image ever generated here. The Python API
(``Client``, ``ImageRequest``, ``History``) works in plain scripts too.

Names are imported lazily so ``import cometnb`` stays fast and loads neither httpx, Pillow,
IPython nor ipywidgets until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._client import AsyncClient, Client
    from ._errors import (
        APIError,
        AuthenticationError,
        CancelledError,
        CometError,
        RateLimitError,
        ResponseError,
        ValidationError,
    )
    from ._models import GeneratedImage, Generation, Grid, ImageRequest
    from .history import History, Record, history
    from .widget import panel

__all__ = [
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "CancelledError",
    "Client",
    "CometError",
    "GeneratedImage",
    "Generation",
    "Grid",
    "History",
    "ImageRequest",
    "RateLimitError",
    "Record",
    "ResponseError",
    "ValidationError",
    "__version__",
    "history",
    "load_ipython_extension",
    "panel",
    "unload_ipython_extension",
]

_LAZY = {
    "Client": "._client",
    "AsyncClient": "._client",
    "CometError": "._errors",
    "ValidationError": "._errors",
    "AuthenticationError": "._errors",
    "RateLimitError": "._errors",
    "APIError": "._errors",
    "ResponseError": "._errors",
    "CancelledError": "._errors",
    "ImageRequest": "._models",
    "Generation": "._models",
    "GeneratedImage": "._models",
    "Grid": "._models",
    "History": ".history",
    "Record": ".history",
    "history": ".history",
    "panel": ".widget",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cometnb' has no attribute {name!r}")
    imported = importlib.import_module(module, __name__)
    # ``history`` is served as its (callable) module, not the function: importing the submodule
    # binds the module to this name anyway, so ``cometnb.history.History`` must always work.
    value = imported if name == "history" else getattr(imported, name)
    globals()[name] = value  # cache: later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext cometnb``: register ``%%cometimg`` and ``%cometimg_key``."""
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext cometnb``: remove the magics again."""
    from .magic import unload_ipython_extension as unload

    unload(ipython)
