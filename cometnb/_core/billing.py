"""Which failures may have been billed, as a value: the one rule the retry policy (what not to
retry), the ledger (what a failure cost), batch recovery (what not to resend) and the views
share (API_FACTS.md §4).

A failure is classified once, where it happens, as a :class:`BillingRisk`; the error carries
it (``CometError.billing``), the record's error document and the batch state store it, and
everything else reads it, never the message text.

A request that clearly never started (connect errors, 429, 503) cost nothing, and neither
did one the server refused outright (400, 401, 403, 404, 413, content policy). After 408,
409, 500, 502, 504, 520, 522, 524 or any other 5xx, a timeout or a dropped connection, the
server may already have generated — and billed — the image.
"""

from __future__ import annotations

import enum
from typing import Literal

__all__ = [
    "BILLED_STATUSES",
    "SAFE_STATUSES",
    "BillingRisk",
    "Safety",
    "final_risk",
    "status_may_be_billed",
    "status_risk",
    "status_safety",
]

# What a retry of a failed attempt would risk: "safe" (it never ran), "billed" (it may have
# run; retried only with retry_billed, once), "never" (the same request gets the same answer).
Safety = Literal["safe", "billed", "never"]

# Statuses where the request certainly did not run: rate limiting and overload.
SAFE_STATUSES = frozenset({429, 503})
# Statuses after which a generation may already have finished (and been billed).
BILLED_STATUSES = frozenset({408, 409, 500, 502, 504, 520, 522, 524})


class BillingRisk(enum.Enum):
    """Why a failed request did or did not cost money; stored by its ``value``."""

    NOT_SENT = "not_sent"  # never left this process: checks, connect errors, held back
    REFUSED = "refused"  # the server refused it before any work (4xx, policy, spent quota)
    RATE_LIMITED = "rate_limited"  # 429 / 503: the server did not run it
    SENT_NO_ANSWER = "sent_no_answer"  # sent, no answer: timeout, dropped, cancelled, killed
    SERVER_FAILED = "server_failed"  # sent, answered 408/409/5xx: it may have run
    ANSWERED_UNUSABLE = "answered_unusable"  # answered, but over a cap, too many, corrupt
    NOT_STORED = "not_stored"  # answered with images (billed), which could not be stored
    EARLIER_ATTEMPT = "earlier_attempt"  # this attempt cost nothing, an earlier one may have

    @property
    def may_be_billed(self) -> bool:
        return self not in _FREE

    @property
    def safety(self) -> Safety:
        """What a retry of an attempt that failed this way would risk."""
        if self in (BillingRisk.NOT_SENT, BillingRisk.RATE_LIMITED):
            return "safe"
        if self in (BillingRisk.SENT_NO_ANSWER, BillingRisk.SERVER_FAILED):
            return "billed"
        return "never"

    @classmethod
    def parse(cls, value: object) -> BillingRisk | None:
        """A stored value back (``None`` for a record or row written before it was stored)."""
        try:
            return cls(value)
        except ValueError:
            return None


_FREE = frozenset({BillingRisk.NOT_SENT, BillingRisk.REFUSED, BillingRisk.RATE_LIMITED})


def final_risk(attempt: BillingRisk, billed_attempts: int) -> BillingRisk:
    """A request's risk once its last attempt failed with ``attempt``: an earlier attempt that
    may have been billed (``billed_attempts`` > 0) makes a free last attempt count."""
    if billed_attempts and not attempt.may_be_billed:
        return BillingRisk.EARLIER_ATTEMPT
    return attempt


def status_risk(status: int) -> BillingRisk:
    """The risk of an HTTP error ``status`` (before looking at the body)."""
    if status in SAFE_STATUSES:
        return BillingRisk.RATE_LIMITED
    if status in BILLED_STATUSES or status >= 500:
        return BillingRisk.SERVER_FAILED
    return BillingRisk.REFUSED


def status_safety(status: int) -> Safety:
    """How risky a retry of an HTTP error ``status`` is (before looking at the body)."""
    return status_risk(status).safety


def status_may_be_billed(status: int) -> bool:
    """True when a request answered with ``status`` may have been billed."""
    return status_risk(status).may_be_billed
