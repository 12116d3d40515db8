"""The API key: :class:`Secret` holds it (never in clear in a repr, log or error) and where it
can come from besides ``Client(api_key=...)`` and ``%cometimg_key``.

Precedence, highest first: the explicit key, ``%cometimg_key``, a ``.env`` beside the notebook
(read with python-dotenv, never loaded into ``os.environ``), Colab's secrets panel, then
``$COMETAPI_KEY``. Every value found is registered so error messages redact it.
"""

from __future__ import annotations

import hmac
import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, SupportsIndex

from cometnb._core.errors import register_secret

__all__ = [
    "DOTENV_NAME",
    "MIN_KEY_CHARS",
    "KeySource",
    "Secret",
    "colab_key",
    "dotenv_key",
    "find_key",
    "mask",
    "reset",
]


# --- the key ----------------------------------------------------------------------------------

# CometAPI keys are "sk-" and 48 characters; anything under 20 is a typo or a test value: the
# client refuses to send it (it could not be told apart from ordinary words when redacting).
MIN_KEY_CHARS = 20


# Printable ASCII without spaces: what a bearer token in an HTTP header may hold.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def mask(key: str | None) -> str | None:
    """``sk-cometnb-…a1e0`` → ``sk-…e0``: enough to tell keys apart, useless to an attacker."""
    if not key:
        return None
    return f"{key[:3]}…{key[-2:]}" if len(key) >= 12 else "…"


class Secret:
    """A string that is only ever shown masked; :meth:`reveal` is the one way to the value.

    Example::

        >>> s = Secret("sk-cometnb-0123456789abcdef")
        >>> s, str(s), f"{s}"
        (Secret('sk-…ef'), "Secret('sk-…ef')", "Secret('sk-…ef')")
        >>> s.bearer().startswith("Bearer sk-")
        True
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, not a {type(value).__name__}")
        object.__setattr__(self, "_value", value)
        register_secret(value)

    @classmethod
    def of(cls, value: str | Secret | None) -> Secret | None:
        """Wrap ``value`` (stripped); ``None`` for nothing or blanks, a Secret unchanged."""
        if value is None or isinstance(value, Secret):
            return value
        stripped = value.strip()
        return cls(stripped) if stripped else None

    def reveal(self) -> str:
        """The bare value: use it in the expression that needs it, never keep it in a name."""
        return self._value

    def bearer(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self._value}"

    @property
    def header_safe(self) -> bool:
        """True when an HTTP header can carry it (printable ASCII, no spaces)."""
        return _HEADER_SAFE.fullmatch(self._value) is not None

    @property
    def realistic(self) -> bool:
        """True when it is long enough to be a real key (see :data:`MIN_KEY_CHARS`)."""
        return len(self._value) >= MIN_KEY_CHARS

    def __len__(self) -> int:
        return len(self._value)

    def found_in(self, text: str) -> bool:
        """True when ``text`` contains the key."""
        return self._value in text

    def masked(self) -> str:
        return mask(self._value) or "…"

    def __repr__(self) -> str:
        return f"Secret({self.masked()!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a Secret cannot be changed")

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("a Secret cannot be pickled (it would write the key to a file)")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


# --- where a key can come from ----------------------------------------------------------------

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
