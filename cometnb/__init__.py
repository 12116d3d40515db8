"""cometnb: image generation as a first-class notebook activity.

``%load_ext cometnb`` gives the ``%%cometimg`` cell magic; ``cometnb.panel()`` a widget panel;
``cometnb.history()`` every prompt, setting and image ever generated here. The Python API
(``Client``, ``ImageRequest``, ``History``) works in plain scripts too.

Names are imported lazily so ``import cometnb`` stays fast and loads neither httpx, Pillow,
IPython nor ipywidgets until they are used.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

from cometnb._core import session as _session
from cometnb._version import __version__

if TYPE_CHECKING:
    from cometnb._client.batch import Batch
    from cometnb._client.batch_run import batch
    from cometnb._client.client import AsyncClient, Client
    from cometnb._client.lookups import balance, refresh_prices
    from cometnb._core.budget import Balance
    from cometnb._core.byte_limits import ByteLimits
    from cometnb._core.edit_inputs import mask
    from cometnb._core.errors import (
        APIError,
        AuthenticationError,
        BatchBusyError,
        BudgetError,
        CancelledError,
        CometError,
        RateLimitError,
        ResponseError,
        ValidationError,
    )
    from cometnb._core.generations import (
        ClientEvent,
        GeneratedImage,
        Generation,
        Grid,
        ImageRequest,
    )
    from cometnb._core.prices import Cost, PriceTable, prices
    from cometnb._notebook.panel import panel
    from cometnb._storage.spend import SpendTable
    from cometnb.history import History, Record, history

__all__ = [
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "Balance",
    "Batch",
    "BatchBusyError",
    "BudgetError",
    "ByteLimits",
    "CancelledError",
    "Client",
    "ClientEvent",
    "CometError",
    "Cost",
    "GeneratedImage",
    "Generation",
    "Grid",
    "History",
    "ImageRequest",
    "ModelInfo",
    "ModelTable",
    "PriceTable",
    "RateLimitError",
    "Record",
    "ResponseError",
    "SpendTable",
    "ValidationError",
    "__version__",
    "balance",
    "batch",
    "history",
    "load_ipython_extension",
    "mask",
    "models",
    "panel",
    "prices",
    "refresh_prices",
    "unload_ipython_extension",
]

_LAZY = {
    "Client": "cometnb._client.client",
    "AsyncClient": "cometnb._client.client",
    "batch": "cometnb._client.batch_run",
    "Batch": "cometnb._client.batch",
    "CometError": "cometnb._core.errors",
    "ValidationError": "cometnb._core.errors",
    "AuthenticationError": "cometnb._core.errors",
    "RateLimitError": "cometnb._core.errors",
    "APIError": "cometnb._core.errors",
    "ResponseError": "cometnb._core.errors",
    "CancelledError": "cometnb._core.errors",
    "ImageRequest": "cometnb._core.generations",
    "Generation": "cometnb._core.generations",
    "GeneratedImage": "cometnb._core.generations",
    "Grid": "cometnb._core.generations",
    "History": "cometnb.history",
    "Record": "cometnb.history",
    "history": "cometnb.history",
    "panel": "cometnb.widget",
    "mask": "cometnb._core.edit_inputs",
    "BudgetError": "cometnb._core.errors",
    "BatchBusyError": "cometnb._core.errors",
    "ByteLimits": "cometnb._core.byte_limits",
    "ClientEvent": "cometnb._core.generations",
    "SpendTable": "cometnb._storage.spend",
    "Cost": "cometnb._core.prices",
    "PriceTable": "cometnb._core.prices",
    "prices": "cometnb._core.prices",
    "refresh_prices": "cometnb._client.lookups",
    "models": "cometnb._core.model_table",
    "ModelTable": "cometnb._core.model_table",
    "ModelInfo": "cometnb._core.model_registry",
    "balance": "cometnb._client.lookups",
    "Balance": "cometnb._core.budget",
}

# The public submodules, imported on first use: ``import cometnb`` then
# ``cometnb.sim.use_if_keyless()`` works as the README shows, and stays light until then.
_SUBMODULES = ("demo", "magic", "sim", "widget")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        # Importing a submodule binds it on the package: this hook is not called again.
        return _importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cometnb' has no attribute {name!r}")
    imported = _importlib.import_module(module)
    # ``history`` is served as its (callable) module, not the function: importing the submodule
    # binds the module to this name anyway, so ``cometnb.history.History`` must always work.
    value = imported if name == "history" else getattr(imported, name)
    globals()[name] = value  # cache: later look-ups skip this hook
    return value


def _install_views() -> None:
    from cometnb._views import install

    install()


def _ensure_preview(original: Any, preview: Any) -> bytes | None:
    from cometnb._storage.preview_queue import ensure_preview

    return ensure_preview(original, preview)


def _history_at(path: Any) -> Any:
    from cometnb._storage.folder import history

    return history(path)


def _default_runner(history: Any) -> Any:
    from cometnb._client.client import Client

    return Client(history=history)


def _new_session() -> _session.Session:
    """A session wired to this package: the lower layers display, re-run, find histories and
    make previews through these services, so they never import the views, the client or the
    storage above them; each loads on first use."""
    return _session.Session(
        runner_factory=_default_runner,
        history_finder=_history_at,
        preview_maker=_ensure_preview,
        view_loader=_install_views,
    )


# Made on first use, not here: ``import cometnb`` stays light.
_session.install(_new_session)


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext cometnb``: register ``%%cometimg`` and ``%cometimg_key``."""
    from cometnb._notebook.magics import load_ipython_extension as load

    load(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (``jupyter server extension list`` shows ``cometnb``): the
    history routes live in ``cometnb._server``, imported only by the server."""
    return [{"module": "cometnb._server"}]


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext cometnb``: remove the magics again."""
    from cometnb._notebook.magics import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built history sidebar is (``jupyter labextension develop`` links it)."""
    return [{"src": "labextension", "dest": "cometnb"}]
