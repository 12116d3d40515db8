"""The API key as a value that never shows itself: :class:`Secret`.

A traceback that shows locals (IPython's ``%xmode Verbose``, pdb post-mortem, rich or Sentry
``capture_locals``) prints the ``repr`` of every local of every frame, and such tracebacks end
up in saved notebooks. So the key is wrapped in a :class:`Secret` from the moment it is resolved
to the moment the ``Authorization`` header is built; no frame of ours holds the bare string
longer than that one expression. ``repr``, ``str`` and ``format`` show a mask, pickling refuses.
"""

from __future__ import annotations

import hmac
import re
from typing import Any, NoReturn

from cometnb._core.errors import register_secret

__all__ = ["MIN_KEY_CHARS", "Secret", "mask"]

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

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled (it would write the key to a file)")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
