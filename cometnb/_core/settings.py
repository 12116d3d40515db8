"""Settings: the values in force (traits of ``%config CometImg``, environment, fallbacks) and
where each came from.

:func:`effective_settings` resolves them the way a request would (what ``%config CometImg``
shows); :func:`key_origin` says where the key comes from without ever showing it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cometnb._core.byte_limits import DEFAULT_LIMITS, ByteLimits
from cometnb._core.errors import ValidationError, register_secret
from cometnb._core.secret import MIN_KEY_CHARS, Secret, find_key
from cometnb._core.session import current

__all__ = [
    "Effective",
    "effective_settings",
    "effective_text",
    "key_origin",
]


# --- settings ---------------------------------------------------------------------------------

DEFAULT_BASE_URL = "https://api.cometapi.com/v1"


# The one endpoint cometnb calls, under the base URL (API_FACTS: POST /v1/images/generations).
GENERATIONS_PATH = "/images/generations"


DEFAULT_MODEL = "gpt-image-2"


DEFAULT_HISTORY_DIR = "cometnb-history"


KEY_ENV = "COMETAPI_KEY"


BASE_URL_ENV = "COMETAPI_BASE_URL"


HISTORY_ENV = "COMETNB_HISTORY"


@dataclass
class Settings:
    """Defaults used when a call does not say otherwise (mirrors the ``CometImg`` traits)."""

    model: str = DEFAULT_MODEL
    size: str | None = None
    quality: str | None = None
    concurrency: int = 4
    timeout: float = 600.0  # read timeout, seconds: gpt-image-2 "high" often takes > 2 min
    connect_timeout: float = 10.0
    max_retries: int = 2
    thumbnail_px: int = 512
    history_dir: str | None = None
    base_url: str | None = None
    budget: float | None = None  # USD this session may spend (None: no cap)
    confirm_above: float | None = None  # USD: a cell estimated above it needs --yes
    prices_file: str | None = None  # a JSON price table laid over the built-in one
    balance_url: str | None = None  # CometAPI's quota endpoint (_core/budget.py), if not default
    limits: ByteLimits = (
        DEFAULT_LIMITS  # caps on reply size and time (see cometnb._core.byte_limits)
    )


def active() -> Settings:
    """The settings in force for this session (the magic keeps them in sync with ``%config``)."""
    return current().part(Settings)


def simulator_url() -> str | None:
    """The keyless simulator's URL when it answers (``cometnb.sim.use_if_keyless``)."""
    return current().simulator_url


def use_simulator(url: str | None) -> None:
    """Send requests to the keyless simulator at ``url`` (``None``: stop doing so)."""
    current().simulator_url = url


def session_key() -> str | None:
    """The key ``%cometimg_key`` holds for this session (in memory only), if any."""
    return current().session_key


def set_session_key(key: str | None) -> None:
    """Hold a key in memory for this process only (what ``%cometimg_key`` does)."""
    key = key.strip() if key and key.strip() else None
    if key is not None and len(key) < MIN_KEY_CHARS:
        raise ValidationError(
            f"That key is too short to be a CometAPI key ({len(key)} characters; real keys "
            f"have at least {MIN_KEY_CHARS}); it was not set.",
            field="api_key",
            hint="Copy the whole key from the CometAPI console (it starts with sk-).",
        )
    session = current()
    session.session_key = key
    session.simulator_url = None  # a key of the user's own leaves the keyless simulator
    register_secret(key)


def _configured_key() -> str | None:
    """``%cometimg_key``, then a ``.env`` file beside the notebook, then Colab's secrets, then
    ``$COMETAPI_KEY`` (:mod:`cometnb._core.secret`): the one order every caller uses."""
    held = current().session_key
    if held:
        return held
    from cometnb._core.secret import find_key

    found = find_key()
    return (found.key if found is not None else None) or os.environ.get(KEY_ENV) or None


def resolve_api_key(explicit: str | Secret | None = None) -> str | None:
    """``Client(api_key=…)``, then the configured key (:func:`_configured_key`)."""
    if isinstance(explicit, Secret):
        return explicit.reveal()
    key = explicit or _configured_key()
    register_secret(key)
    return key


def resolve_key(explicit: str | Secret | None = None) -> Secret | None:
    """:func:`resolve_api_key` as a :class:`Secret`, which never shows the key in a repr."""
    if explicit:
        return Secret.of(explicit)
    return Secret.of(_configured_key())  # a Secret registers itself for redaction


def resolve_base_url(explicit: str | None = None) -> str:
    """``Client(base_url=…)``, ``CometImg.base_url``, ``$COMETAPI_BASE_URL``, then the default."""
    env = os.environ.get(BASE_URL_ENV)
    url = explicit or active().base_url or simulator_url() or env or DEFAULT_BASE_URL
    return url.rstrip("/")


def generations_url(base_url: str | None = None) -> str:
    """The URL requests are POSTed to: :data:`GENERATIONS_PATH` under :func:`resolve_base_url`.

    Example::

        >>> generations_url("https://api.cometapi.com/v1/")
        'https://api.cometapi.com/v1/images/generations'
    """
    return resolve_base_url(base_url) + GENERATIONS_PATH


def resolve_history_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``CometImg.history_dir``, then ``$COMETNB_HISTORY``, then ``./cometnb-history``."""
    raw = explicit or active().history_dir or os.environ.get(HISTORY_ENV) or DEFAULT_HISTORY_DIR
    return Path(raw).expanduser()


# --- settings in force and their origin -------------------------------------------------------


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
    session = current()
    if session.simulator_url:  # a key of the user's own clears the simulator URL
        return "none: the offline simulator answers (synthetic images, nothing billed)"
    if session.session_key:
        return "%cometimg_key (held in memory)"
    found = find_key()
    if found is not None:
        return found.where
    if os.environ.get(KEY_ENV, "").strip():
        return f"${KEY_ENV}"
    return "not set (run %cometimg_key, or cometnb.sim.use_if_keyless() for the simulator)"


def effective_settings() -> list[Effective]:
    """``base_url``, ``history_dir`` and the key's origin as the next request would see them."""
    in_force = active()
    if in_force.base_url:
        url_source = "CometImg.base_url"
    elif simulator_url():
        url_source = "the keyless simulator (cometnb.sim.use_if_keyless)"
    elif os.environ.get(BASE_URL_ENV):
        url_source = f"${BASE_URL_ENV}"
    else:
        url_source = "default"
    if in_force.history_dir:
        dir_source = "CometImg.history_dir"
    elif os.environ.get(HISTORY_ENV):
        dir_source = f"${HISTORY_ENV}"
    else:
        dir_source = "default, beside the notebook"
    folder = resolve_history_dir().resolve()
    return [
        Effective("base_url", resolve_base_url(), url_source),
        Effective("history_dir", str(folder), dir_source),
        Effective("api key", "(hidden)", key_origin()),
    ]


def effective_text() -> str:
    """The block ``%config CometImg`` prints after the traits."""
    lines = ["Effective now (what the next request uses):"]
    lines += [f"  {e.name} = {e.value}  [{e.source}]" for e in effective_settings()]
    return "\n".join(lines)
