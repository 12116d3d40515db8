"""The billing-aware retry policy (API_FACTS.md §4): what may be retried, and how long to wait.

Each failed attempt is described by a :class:`Failure` whose ``risk`` (a
:class:`~cometnb._core.billing.BillingRisk`, decided where the failure is met) says what a retry
would risk (its ``safety``):

* ``"safe"`` — the request clearly never started (connect errors, 429, 503): retried up to
  ``max_retries`` times with backoff.
* ``"billed"`` — the server may have generated (and billed) an image: read timeouts, dropped
  connections, 408/409, 500/502/504/524. Retried only with ``retry_billed=True``, and then once.
* ``"never"`` — the same request gets the same answer (400, 401, 403, 404, 413, content policy,
  exhausted quota).

The policy is pure: it never sleeps and never does I/O, so it is tested without waiting.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timezone

from cometnb._core.billing import BillingRisk, Safety
from cometnb._core.errors import CometError

__all__ = [
    "QUOTA_HINT",
    "RATE_LIMITED_REASON",
    "RATE_LIMIT_PATIENCE_S",
    "Decision",
    "Failure",
    "RetryPolicy",
    "parse_retry_after",
    "parse_should_retry",
]

# The hint of a 429 that says the account ran out of credit (batch recovery tells it apart).
QUOTA_HINT = (
    "Your CometAPI quota or balance is exhausted: top up the account (retrying won't help)."
)

RATE_LIMIT_PATIENCE_S = 300.0  # five minutes of nothing but 429s
RATE_LIMITED_REASON = "HTTP 429"  # a spent quota is a 429 too, but REFUSED: never retried

BILLED_HINT = (
    "The generation may still have been billed, so it was not retried automatically; "
    "pass retry_billed=True to allow one retry."
)
BILLED_RETRIED_HINT = (
    "It was already retried once (retry_billed=True); each attempt may have been billed."
)


@dataclass
class Failure:
    """One failed attempt: the error to raise if it is final, and what a retry would risk.

    ``risk`` is why it did or did not cost money (the classification lives in the core, so the
    ledger prices failures by the same rule: what is not retried because it may be billed is
    also counted as spent). ``reason`` is short and shown while waiting ("HTTP 429",
    "connection refused"); ``retry_after`` is the server's requested delay in seconds,
    ``should_retry`` its ``x-should-retry`` header (or False for a request this side cannot send).
    """

    error: CometError
    risk: BillingRisk
    reason: str
    retry_after: float | None = None
    should_retry: bool | None = None

    @property
    def safety(self) -> Safety:
        return self.risk.safety


@dataclass(frozen=True)
class Decision:
    """``wait_s`` before the next attempt, or ``None`` to give up (then ``hint``, if set,
    replaces the error's hint)."""

    wait_s: float | None
    hint: str | None = None


@dataclass
class RetryPolicy:
    """Decides, per failure, whether to retry and how long to wait.

    Backoff is ``base_delay * 2**n`` capped at ``max_delay``, minus up to ``jitter`` (25%) so
    that many clients hit by the same 429 do not come back in lockstep. A server-given
    ``Retry-After`` wins; one longer than ``max_retry_after`` means "give up now".
    ``rate_limit_patience_s`` bounds a storm of 429s: once the server has refused everything
    for that long, :func:`cometnb._client.exchange.request_steps` sends nothing more.

    Example::

        >>> policy = RetryPolicy(max_retries=2, rng=random.Random(0))
        >>> 0.375 <= policy.backoff(0) <= 0.5
        True
    """

    max_retries: int = 2
    retry_billed: bool = False
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 120.0
    # A storm of rate-limit 429s (the pacer slows to one request a minute) ends here: a
    # request not yet sent when the server has refused for this long gives up, never billed.
    rate_limit_patience_s: float = RATE_LIMIT_PATIENCE_S
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, retries_done: int) -> float:
        """The delay before retry number ``retries_done + 1``, jitter included."""
        delay = min(self.base_delay * 2.0**retries_done, self.max_delay)
        return delay * (1.0 - self.jitter * self.rng.random())

    def decide(
        self,
        failure: Failure,
        retries_done: int,
        billed_retries_done: int,
        *,
        patient: bool = False,
    ) -> Decision:
        """Retry ``failure`` (returning the wait) or give up (returning a better hint, if any).

        ``patient``: the run's rate-limit patience bounds a storm (a pacer waits each request's
        turn), so a rate-limit 429, never billed, does not count against ``max_retries``: no
        request fails merely because the account is busy.
        """
        if failure.safety == "never" or failure.should_retry is False:
            return Decision(None)
        if failure.safety == "billed":
            if not self.retry_billed:
                return Decision(None, BILLED_HINT)
            if billed_retries_done >= 1:
                return Decision(None, BILLED_RETRIED_HINT)
        busy = patient and failure.reason == RATE_LIMITED_REASON
        if retries_done >= self.max_retries and not busy:
            return Decision(None)
        if failure.retry_after is not None:
            if failure.retry_after > self.max_retry_after:
                return Decision(None, _try_again_hint(failure.retry_after))
            return Decision(failure.retry_after)
        return Decision(self.backoff(retries_done))


# A Retry-After beyond this is absurd (1e308, a 23-digit number, year 9999): it is read as this
# long, which gives up and names a date (time.localtime overflows on the raw value).
MAX_RETRY_AFTER_S = 366 * 86400.0


def _try_again_hint(seconds: float, now: float | None = None) -> str:
    start = time.time() if now is None else now
    if seconds >= MAX_RETRY_AFTER_S:
        seconds = MAX_RETRY_AFTER_S
        try:
            shown = time.strftime("%Y-%m-%d", time.localtime(start + seconds))
        except (OverflowError, ValueError, OSError):  # a clock set far ahead
            shown = "a year from now"
        return f"The server asks to wait more than a year; try again after {shown} at the earliest."
    when = time.localtime(start + seconds)
    # A time alone would read as today; a wait past midnight gets its date.
    same_day = time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d", time.localtime(start))
    shown = time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", when)
    return f"The server asks to wait {seconds:.0f} s; try again after {shown} (local time)."


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when neither header is present or parseable; never a negative number, and
    never more than :data:`MAX_RETRY_AFTER_S` (an absurd value means "not before long").

    Example::

        >>> parse_retry_after({"Retry-After": "2"})
        2.0
    """
    seconds = _retry_after_s(_lower(headers), time.time() if now is None else now)
    return None if seconds is None else min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _retry_after_s(h: Mapping[str, str], now: float) -> float | None:
    ms = _as_float(h.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    raw = h.get("retry-after")
    if raw is None:
        return None
    seconds = _as_float(raw)
    if seconds is not None:
        return seconds
    try:
        date = email.utils.parsedate_to_datetime(raw.strip())
        if date.tzinfo is None:  # an HTTP date is always GMT; tolerate a missing zone
            date = date.replace(tzinfo=timezone.utc)
        return date.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """The ``x-should-retry`` header as a bool (``None`` when absent or unrecognised)."""
    value = _lower(headers).get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(value)


def _as_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return None if math.isnan(value) else value  # "inf" is absurd, not unreadable: capped
