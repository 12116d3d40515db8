"""The settings in force right now, with where each came from (what ``%config CometImg`` shows).

A trait left at ``None`` means "use the fallback", which tells a user nothing: while the
keyless simulator answers, ``base_url`` is its loopback URL; ``history_dir`` is a real folder.
:func:`effective_settings` resolves them the way a request would; :func:`key_origin` says
where the key comes from without ever showing it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cometnb._core import key_sources
from cometnb._core import settings as _settings

__all__ = ["Effective", "effective_settings", "effective_text", "key_origin"]


@dataclass(frozen=True)
class Effective:
    """One setting as a request would use it: ``value`` and its ``source`` in plain words."""

    name: str
    value: str
    source: str


def key_origin(explicit: str | None = None) -> str:
    """Where the API key comes from, in the order they are tried (never the key itself).

    Example::

        >>> key_origin("sk-…")
        'Client(api_key=…)'
    """
    if explicit:
        return "Client(api_key=…)"
    session = _settings._session_key
    if _settings._simulator_url:  # a key of the user's own clears the simulator URL
        return "none: the offline simulator answers (synthetic images, nothing billed)"
    if session:
        return "%cometimg_key (held in memory)"
    found = key_sources.find_key()
    if found is not None:
        return found.where
    if os.environ.get(_settings.KEY_ENV, "").strip():
        return f"${_settings.KEY_ENV}"
    return "not set (run %cometimg_key, or cometnb.sim.use_if_keyless() for the simulator)"


def effective_settings() -> list[Effective]:
    """``base_url``, ``history_dir`` and the key's origin as the next request would see them."""
    active = _settings.active()
    if active.base_url:
        url_source = "CometImg.base_url"
    elif _settings._simulator_url:
        url_source = "the keyless simulator (cometnb.sim.use_if_keyless)"
    elif os.environ.get(_settings.BASE_URL_ENV):
        url_source = f"${_settings.BASE_URL_ENV}"
    else:
        url_source = "default"
    if active.history_dir:
        dir_source = "CometImg.history_dir"
    elif os.environ.get(_settings.HISTORY_ENV):
        dir_source = f"${_settings.HISTORY_ENV}"
    else:
        dir_source = "default, beside the notebook"
    folder = _settings.resolve_history_dir().resolve()
    return [
        Effective("base_url", _settings.resolve_base_url(), url_source),
        Effective("history_dir", str(folder), dir_source),
        Effective("api key", "(hidden)", key_origin()),
    ]


def effective_text() -> str:
    """The block ``%config CometImg`` prints after the traits."""
    lines = ["Effective now (what the next request uses):"]
    lines += [f"  {e.name} = {e.value}  [{e.source}]" for e in effective_settings()]
    return "\n".join(lines)
