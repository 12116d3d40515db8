"""The error taxonomy. Every failure a user sees is a ``CometError``.

Messages are short, name what went wrong and what to do, and never contain the API key:
``CometError.__init__`` scrubs any secret registered with :func:`register_secret` from the
message and from every string attribute, so a key echoed back by a server cannot leak.
"""

from __future__ import annotations

import threading
from typing import Any

from cometnb._core.billing import BillingRisk
from cometnb._core.text import clip

__all__ = [
    "APIError",
    "AuthenticationError",
    "BatchBusyError",
    "BudgetError",
    "CancelledError",
    "CometError",
    "NotSent",
    "RateLimitError",
    "ResponseError",
    "ValidationError",
    "redact",
    "register_secret",
    "short_message",
]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
REDACTED = "[REDACTED]"
# Shorter values are not real keys (CometAPI's are "sk-" and 48 characters): redacting "test"
# would blank ordinary words ("a [REDACTED] pattern for the con[REDACTED]").
MIN_SECRET_CHARS = 16


def register_secret(value: object) -> None:
    """Remember a secret (the API key) so that :func:`redact` removes it from any text.

    Values shorter than :data:`MIN_SECRET_CHARS` are ignored; a :class:`Secret` registers
    itself when it is made.
    """
    if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_CHARS:
        with _secrets_lock:
            _secrets.add(value.strip())


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``[REDACTED]``."""
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class CometError(Exception):
    """Base class of every cometnb error.

    ``hint`` is one sentence saying what to do about it; it is appended to ``str(error)``.
    ``record_id`` is the history record of the failed request, once it has been recorded
    (``cometnb.history().get(error.record_id)``).
    """

    hint: str | None = None
    record_id: str | None = None
    # Set once, where the client classifies the failure (cometnb._core.billing): why it did
    # or did not cost money. None when not known (an error raised outside a request).
    billing: BillingRisk | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        if hint is not None:
            self.hint = hint
        super().__init__(self.message)

    @property
    def may_be_billed(self) -> bool | None:
        """True when the server may have billed the request; None when not known."""
        return None if self.billing is None else self.billing.may_be_billed

    def __setattr__(self, name: str, value: Any) -> None:
        # Every attribute is scrubbed as it is set (message, hint, code, param, body, and any
        # set later): a server that echoes the key in its error body leaves it in none.
        super().__setattr__(name, _scrubbed(value))

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        # "…got 800x600. Nothing was sent.": the hint is its own sentence.
        stop = "" if self.message.rstrip().endswith((".", "!", "?", ":")) else "."
        return f"{self.message.rstrip()}{stop} {self.hint}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: one short paragraph.
        return [f"{type(self).__name__}: {self}"]


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrubbed(v) for v in value)
    return value


class ValidationError(CometError, ValueError):
    """The request was refused before any network call; nothing was sent or billed.

    ``field`` names the offending request field (``None`` for whole-request problems).
    """

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.field = field


class CancelledError(CometError):
    """The user cancelled (interrupt, Cancel button) before the result arrived.

    ``sent`` says whether the request had been sent: ``False`` means nothing was billed,
    ``True`` that the server may have started (and may bill) it, ``None`` unknown.
    """

    def __init__(self, message: str, *, hint: str | None = None, sent: bool | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sent = sent


class APIError(CometError):
    """The server answered with an error status.

    Attributes mirror the OpenAI error body: ``status`` (HTTP), ``message``, ``code``,
    ``param``, ``type`` and ``request_id`` (parsed from CometAPI's "(request id: …)").
    ``body`` holds the parsed error body (already redacted) for logging.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code or None
        self.param = param
        self.type = type
        self.request_id = request_id
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class AuthenticationError(APIError):
    """No key, or the server rejected the key (HTTP 401/403)."""


class RateLimitError(APIError):
    """HTTP 429 that was not resolved by the allowed retries."""


class ResponseError(CometError):
    """The server answered something unusable: bad JSON, no images, corrupt or non-image bytes."""


class BudgetError(ValidationError):
    """A request (or a whole cell) was refused because of a budget; nothing was sent.

    ``estimate_usd`` is what it would cost, ``left_usd`` what the budget has left (``None``
    for a refusal that is not about what is left: confirm_above, unknown cost).
    """

    def __init__(
        self,
        message: str,
        *,
        estimate_usd: float | None = None,
        left_usd: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, field="budget", hint=hint)
        self.estimate_usd = estimate_usd
        self.left_usd = left_usd


class BatchBusyError(CometError):
    """Another run (another process, or this one) is running the same named batch now."""


class NotSent(CometError):
    """Raised by an ``on_event`` callback on the ``"sending"`` event to hold the request back:
    nothing is sent (a batch that could not record its item as in flight raises it, since a
    request it cannot account for could be paid twice after a kill)."""

    billing = BillingRisk.NOT_SENT


# A panel's message line, a history row's reason: one readable line.
SHORT_MESSAGE_CHARS = 300


def short_message(exc: BaseException) -> str:
    """One readable, redacted line for ``exc`` (never a traceback, never the key); unexpected
    errors are named by type.

    Example::

        >>> short_message(ValueError("bad"))
        'Unexpected error (ValueError): bad'
    """
    if isinstance(exc, CometError):
        text = str(exc)
    else:
        text = f"Unexpected error ({type(exc).__name__}): {exc}"
    return clip(redact(" ".join(text.split())), SHORT_MESSAGE_CHARS)
