"""Which failures may have been billed: the one rule the retry policy (what not to retry) and
the ledger (what a failure cost) share, so a card never says "may have been billed" beside
"$0.000" (API_FACTS.md §4).

A request that clearly never started (connect errors, 429, 503) cost nothing, and neither
did one the server refused outright (400, 401, 403, 404, 413, content policy). After 408,
409, 500, 502, 504, 520, 522, 524 or any other 5xx, a timeout or a dropped connection, the
server may already have generated — and billed — the image.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BILLED_STATUSES", "SAFE_STATUSES", "Safety", "status_may_be_billed", "status_safety"]

Safety = Literal["safe", "billed", "never"]

# Statuses where the request certainly did not run: rate limiting and overload.
SAFE_STATUSES = frozenset({429, 503})
# Statuses after which a generation may already have finished (and been billed).
BILLED_STATUSES = frozenset({408, 409, 500, 502, 504, 520, 522, 524})


def status_safety(status: int) -> Safety:
    """How risky a retry of an HTTP error ``status`` is (before looking at the body)."""
    if status in SAFE_STATUSES:
        return "safe"
    if status in BILLED_STATUSES or status >= 500:
        return "billed"
    return "never"


def status_may_be_billed(status: int) -> bool:
    """True when a request answered with ``status`` may have been billed."""
    return status_safety(status) == "billed"
