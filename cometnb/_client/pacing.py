"""Pacing: send requests at the rate the server's limit allows, found by itself.

Image APIs limit requests (and images) per minute per key (API_FACTS.md §9), so past a handful
of requests the limit, not the client, sets the pace. A :class:`Pacer` decides when the next
request may go out; the concurrency limit (:mod:`._limiter`) still caps how many are in
flight. It learns the rate in one of two ways:

* **Headers** (OpenAI's ``x-ratelimit-limit-requests`` / ``-remaining-requests`` /
  ``-reset-requests``): the limit per minute gives the rate, and ``remaining`` how many may
  go now, so requests are sent just under the limit and the burst is used.
* **Without headers**, from the 429s themselves (AIMD on the sending rate): the first
  rate-limit 429 sets the rate just under what the server accepted in the last seconds; each
  later one (for a request sent after the last cut) cuts it by ``decrease``; while no 429
  comes it grows by ``increase`` a second. It never goes below ``floor``. A 429 with
  ``Retry-After: 0`` says "retry now": the server is not asking for a lower rate.

Quota 429s (the balance is exhausted) never reach the pacer: the retry policy stops at once.
The pacer never sleeps and does no I/O: :meth:`Pacer.next_send` answers "go" or "wait this
long", and the client performs the wait (the sans-I/O plan in ``_client/base.py``).

Example::

    >>> now = [0.0]
    >>> pacer = Pacer(clock=lambda: now[0])
    >>> pacer.next_send().wait_s          # no limit known: go at once
    0.0
    >>> pacer.settle(pacer.last, limited=False, limits=RateLimits(limit=60, remaining=0))
    >>> round(pacer.next_send().wait_s, 2)  # 60 a minute, none left: one a second
    1.02
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cometnb._core.progress import RATE_LIMIT_REASON

__all__ = ["RATE_LIMIT_REASON", "Pacer", "RateLimits", "Ticket", "Turn", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
# Waits after which a request goes anyway when the clock did not move meanwhile (a test's
# instant sleep): a real wait always lets time pass, so it is never cut short.
MAX_STALLS = 8


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset notation (``"1s"``, ``"6m0s"``, ``"250ms"``, ``"1h2m3.5s"``) or plain
    seconds (``"1.5"``) as seconds; ``None`` when absent or unreadable.

    Example::

        >>> parse_duration("6m0s"), parse_duration("250ms"), parse_duration("2")
        (360.0, 0.25, 2.0)
    """
    if text is None:
        return None
    text = text.strip().lower()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(amount) * scale[unit] for amount, unit in parts)


@dataclass(frozen=True)
class RateLimits:
    """What one answer's rate-limit headers said (``None`` for a header that was absent)."""

    limit: int | None = None  # requests per minute
    remaining: int | None = None  # requests that may be sent now
    reset_s: float | None = None  # until the allowance is full again

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits | None:
        """The ``x-ratelimit-*-requests`` headers, or ``None`` when the server sends none."""
        lower = {k.lower(): v for k, v in headers.items()}
        limit = _as_int(lower.get("x-ratelimit-limit-requests"))
        remaining = _as_int(lower.get("x-ratelimit-remaining-requests"))
        reset = parse_duration(lower.get("x-ratelimit-reset-requests"))
        if limit is None and remaining is None and reset is None:
            return None
        return cls(limit, remaining, reset)


def _as_int(text: str | None) -> int | None:
    try:
        return None if text is None else max(0, int(float(text.strip())))
    except ValueError:
        return None


@dataclass
class Ticket:
    """One send the pacer allowed: when it went, and (once read) the answer's headers."""

    sent_at: float
    limits: RateLimits | None = None
    free: bool = False  # the one send a cut lets through at once (its 429 is expected)


@dataclass(frozen=True)
class Turn:
    """The answer of :meth:`Pacer.next_send`: ``wait_s`` = 0 means "send now" (``ticket`` is
    then the send's ticket); otherwise wait that long and ask again."""

    wait_s: float
    ticket: Ticket | None = None


class Pacer:
    """When the next request may be sent, from the server's rate-limit headers or its 429s.

    Thread-safe (the sync client and its asyncio twin may share one). ``floor`` is the lowest
    rate in requests a second (default one a minute); ``margin`` keeps a header-given rate
    just under the limit; ``window`` is how many seconds of sends measure the accepted rate.
    """

    def __init__(
        self,
        *,
        floor: float = 1.0 / 60.0,
        decrease: float = 0.85,
        increase: float = 0.03,
        margin: float = 0.98,
        window: float = 2.0,
        relax_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.floor, self.decrease, self.increase = floor, decrease, increase
        self.margin, self.window, self.relax_s = margin, window, relax_s
        self._clock = clock
        self._lock = threading.Lock()
        self.rate: float | None = None  # requests a second; None = not paced
        self.ceiling: float | None = None  # the rate the headers give
        self._tokens = 0.0
        self._capacity = 1.0
        self._at = 0.0  # last refill
        self._cut_at = -math.inf  # when the rate was last cut
        self._limited_at = -math.inf  # the last rate-limit 429
        self._sent: deque[float] = deque()
        self._refused: deque[float] = deque()
        self._waiting = 0
        self._free = False  # a cut lets one request go at once (the retry of a lone request)
        self._synced_at = -math.inf  # send time of the answer whose headers were last followed
        self.last: Ticket | None = None  # the latest ticket handed out (doctests, probes)
        self._storm_since: float | None = None  # the first 429 since the last other answer

    # --- reading the state --------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """How many requests are waiting for their turn right now."""
        return self._waiting

    def storm_s(self) -> float:
        """How long the server has answered only rate-limit 429s (0 when it has not)."""
        with self._lock:
            since = self._storm_since
            return 0.0 if since is None else max(0.0, self._clock() - since)

    def accepted_rate(self) -> float:
        """Requests a second the server accepted over the last :attr:`window` seconds."""
        with self._lock:
            return self._accepted(self._clock())

    # --- the client's calls -------------------------------------------------------------

    def now(self) -> float:
        """The pacer's clock (the caller checks a wait really let time pass)."""
        return self._clock()

    def next_send(self, *, waited: bool = False, force: bool = False) -> Turn:
        """Send now (taking a turn) or wait ``Turn.wait_s`` and ask again.

        ``waited``: this request already waited for a turn (it is counted in :attr:`waiting`
        until it gets one). ``force``: send now anyway (the caller's sleeps do not let time
        pass, see :data:`MAX_STALLS`).
        """
        with self._lock:
            now = self._clock()
            self._relax(now)
            free = self._free
            if free:
                self._free = False
            elif self.rate is not None:
                self._refill(now)
                if self._tokens < 1.0 and not force:
                    self._waiting += not waited
                    return Turn((1.0 - self._tokens) / self.rate)
                self._tokens -= 1.0  # forced: the debt delays the next ones
            self._waiting -= waited and self._waiting > 0
            ticket = Ticket(now, free=free)
            self._sent.append(now)
            self.last = ticket
            return Turn(0.0, ticket)

    def give_up(self, waited: bool) -> None:
        """A request that waited for a turn was cancelled before getting one."""
        with self._lock:
            self._waiting -= waited and self._waiting > 0

    def settle(
        self,
        ticket: Ticket | None,
        *,
        limited: bool,
        retry_after: float | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        """Learn from the answer to ``ticket``: a rate-limit 429 (``limited``) or anything else.

        ``limits`` are the answer's rate-limit headers (also read from ``ticket.limits``).
        """
        if ticket is None:
            return
        limits = limits or ticket.limits
        with self._lock:
            now = self._clock()
            if limits is not None:
                self._follow_headers(ticket, limits, now)
            if not limited:
                self._storm_since = None
            elif self._storm_since is None:
                self._storm_since = ticket.sent_at
            if limited:
                self._refused.append(ticket.sent_at)
                self._limited_at = now
                explained = limits is not None and limits.remaining == 0
                if not explained and retry_after != 0:
                    again = ticket.sent_at > self._cut_at and not ticket.free
                    self._cut(now, retry_after, again=again)

    # --- the policy -------------------------------------------------------------------------

    def _cut(self, now: float, retry_after: float | None, *, again: bool) -> None:
        """Multiplicative decrease, from what the server has been accepting.

        ``again``: the refused request was sent after the last cut, so the cut rate is still
        too high. Otherwise (sent before it) the refusal only corrects the estimate the last
        cut made: requests in flight then were counted as accepted.
        """
        if self.rate is not None:
            self._refill(now)
        # A server asking to wait N s takes at least one request per N s.
        hinted = 1.0 / retry_after if retry_after else 0.0
        measured = max(self._accepted(now) * self.decrease, hinted)
        if again or self.rate is None:
            current = self.rate if self.rate is not None else math.inf
            self.rate = min(current * self.decrease, measured)
            self._tokens = 0.0
            self._free = True  # the next may go at once (a lone request's retry); others wait
            self._cut_at = now
        else:
            self.rate = min(self.rate, measured)
        self.rate = max(self.floor, self.rate)
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self._at = now

    def _follow_headers(self, ticket: Ticket, limits: RateLimits, now: float) -> None:
        if limits.limit:
            self.ceiling = limits.limit / 60.0 * self.margin
            if self.rate is None or self.rate > self.ceiling:
                self.rate = self.ceiling
                self._at = now
        if limits.remaining is None or self.rate is None or ticket.sent_at < self._synced_at:
            return  # answers come back out of order: an older count is stale
        self._synced_at = ticket.sent_at
        # The server counted `remaining` when this request arrived; sends since have taken
        # some, and the refill since has added some.
        since = sum(1 for t in self._sent if t > ticket.sent_at)
        available = limits.remaining - since + self.rate * max(0.0, now - ticket.sent_at)
        self._capacity = max(self._capacity, float(limits.remaining))
        self._tokens = min(available, self._capacity)
        self._at = now

    def _refill(self, now: float) -> None:
        assert self.rate is not None
        elapsed = max(0.0, now - self._at)
        self._at = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self.rate)
        if self.ceiling is None or self.rate < self.ceiling:
            # Grow only while sending: an idle gap is not evidence the server takes more.
            grown = self.rate * (1.0 + self.increase) ** min(elapsed, 1.0)
            self.rate = grown if self.ceiling is None else min(grown, self.ceiling)

    def _relax(self, now: float) -> None:
        """After ``relax_s`` without a 429 and with no header-given limit, stop pacing."""
        if self.rate is not None and self.ceiling is None and now - self._limited_at > self.relax_s:
            self.rate = None

    def _accepted(self, now: float) -> float:
        start = now - self.window
        for times in (self._sent, self._refused):
            while times and times[0] < start - self.window:
                times.popleft()  # keep two windows: a late answer still finds its send
        sent = sum(1 for t in self._sent if t > start)
        refused = sum(1 for t in self._refused if t > start)
        first = self._sent[0] if self._sent else now
        span = max(1.0, min(self.window, now - first))
        return max(0, sent - refused) / span
