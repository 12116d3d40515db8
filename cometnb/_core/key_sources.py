"""Where an API key can come from besides ``Client(api_key=…)`` and ``%cometimg_key``.

People keep keys where their tools already look: a ``.env`` file beside the notebook (read
with python-dotenv, never loaded into ``os.environ``, so child processes and ``%env`` do not
see it) and Colab's secrets panel (``google.colab.userdata``). Precedence, highest first:
the explicit key, ``%cometimg_key``, ``.env``, Colab, then ``$COMETAPI_KEY``
(:func:`cometnb._core.settings.resolve_api_key` applies it).

A key found here is never printed: :func:`key_source` names *where* the key came from, and
every value is registered as a secret so error messages redact it.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cometnb._core.errors import register_secret

__all__ = ["DOTENV_NAME", "KeySource", "colab_key", "dotenv_key", "find_key", "reset"]

DOTENV_NAME = ".env"
KEY_NAME = "COMETAPI_KEY"
# Where ``.env`` is looked for; ``None`` is the working directory (the kernel's: beside the
# notebook). The test suite points it at each test's temp folder, so a developer's own .env
# never reaches a test.
dotenv_folder: Path | None = None
# Colab asks the user to grant a notebook access to a secret; asking once per process is
# enough (a refusal or a missing secret would otherwise be asked again on every request).
_colab_cache: dict[str, str | None] = {}


@dataclass(frozen=True)
class KeySource:
    """A key and where it was found (``where`` is safe to show; ``key`` never is)."""

    key: str
    where: str

    def __repr__(self) -> str:
        return f"KeySource(where={self.where!r}, key='…')"


def _clean(value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    return text or None


def dotenv_key(folder: str | os.PathLike[str] | None = None) -> str | None:
    """``COMETAPI_KEY`` from ``<folder>/.env`` (default: the working directory, i.e. beside
    the notebook); ``None`` when there is no such file, no such line, or no python-dotenv.

    Example::

        >>> dotenv_key("/nonexistent") is None
        True
    """
    path = _folder(folder) / DOTENV_NAME
    try:
        if not path.is_file():
            return None
        from dotenv import dotenv_values
    except (OSError, ImportError):  # unreadable folder, or python-dotenv not installed
        return None
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # a broken .env must not break generation; the next source is tried
    key = _clean(values.get(KEY_NAME))
    register_secret(key)
    return key


def _folder(folder: str | os.PathLike[str] | None) -> Path:
    if folder is not None:
        return Path(folder)
    return dotenv_folder if dotenv_folder is not None else Path.cwd()


def _in_colab() -> bool:
    # Only ever true inside Colab (or a test's stand-in): never import google.* otherwise.
    return "google.colab" in sys.modules


def colab_key() -> str | None:
    """``COMETAPI_KEY`` from Colab's secrets (``google.colab.userdata``), or ``None``.

    Outside Colab this returns at once without importing anything.
    """
    if not _in_colab():
        return None
    if KEY_NAME in _colab_cache:
        return _colab_cache[KEY_NAME]
    key: str | None = None
    try:
        userdata = importlib.import_module("google.colab.userdata")
        key = _clean(userdata.get(KEY_NAME))
    except Exception:  # SecretNotFoundError, NotebookAccessError, no userdata module, ...
        key = None
    register_secret(key)
    _colab_cache[KEY_NAME] = key
    return key


def find_key(folder: str | os.PathLike[str] | None = None) -> KeySource | None:
    """The first key from ``.env`` then Colab, with where it was found; ``None`` if neither."""
    key = dotenv_key(folder)
    if key:
        return KeySource(key, f"{DOTENV_NAME} in {_folder(folder)}")
    key = colab_key()
    if key:
        return KeySource(key, "Colab secrets (COMETAPI_KEY)")
    return None


def reset() -> None:
    """Forget the cached Colab answer (after the user adds the secret, and in tests)."""
    _colab_cache.clear()
