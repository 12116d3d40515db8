"""The simulator's rate limiter: a token bucket per key, for requests and for images per minute.

OpenAI limits image generation per account in requests per minute (RPM) and images per minute
(IPM, API_FACTS.md §9); CometAPI passes such limits through. A bucket holds at most ``burst``
tokens and refills at ``per_minute / 60`` tokens a second; a request takes one request token
and ``n`` image tokens, or is refused with 429 and a ``Retry-After`` (whole seconds, rounded
up, as HTTP wants) saying when it would have been admitted. With ``headers=True`` every answer
also carries OpenAI's ``x-ratelimit-limit-requests`` / ``-remaining-requests`` /
``-reset-requests`` (the reset is how long until the bucket is full again, in OpenAI's
``1m30s`` / ``250ms`` notation).

Keys are never stored: buckets are keyed by a hash of the bearer token.

Example::

    >>> limiter = RateLimiter(rpm=60, burst=1, clock=lambda: 0.0)
    >>> limiter.admit("sk-a", images=1).allowed, limiter.admit("sk-a", images=1).allowed
    (True, False)
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "RateLimiter", "TokenBucket", "format_reset"]


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` tokens a second (not thread-safe;
    :class:`RateLimiter` holds the lock)."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"a bucket needs rate > 0 and capacity >= 1; got {rate}, {capacity}")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity  # a fresh key starts with a full burst
        self._at = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are there (0 when they are); ``inf`` if never."""
        if amount > self.capacity:
            return math.inf
        return max(0.0, (amount - self.tokens) / self.rate)

    def full_in(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.tokens) / self.rate)


@dataclass(frozen=True)
class Admission:
    """The limiter's answer for one request: admitted or not, and the headers to send."""

    allowed: bool
    retry_after: float = 0.0  # seconds until it would be admitted (when refused)
    limited_by: str = ""  # "requests" or "images" (when refused)
    headers: dict[str, str] | None = None  # rate-limit headers (when enabled)

    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, at least 1 (a token bucket never says "now")."""
        return str(max(1, math.ceil(self.retry_after)))


class RateLimiter:
    """Per-key token buckets for requests per minute (``rpm``) and images per minute (``ipm``).

    ``burst`` / ``image_burst`` are the bucket sizes (default: one second's worth, at least 1).
    Either limit may be ``None`` (not limited). ``headers=True`` adds OpenAI's rate-limit
    headers to every answer (admitted or not).
    """

    def __init__(
        self,
        rpm: float | None = None,
        ipm: float | None = None,
        *,
        burst: float | None = None,
        image_burst: float | None = None,
        headers: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("rpm", rpm), ("ipm", ipm), ("burst", burst)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive number; got {value}")
        self.rpm, self.ipm = rpm, ipm
        self.burst = _size(rpm, burst)
        self.image_burst = _size(ipm, image_burst)
        self.headers = headers
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}

    @property
    def active(self) -> bool:
        return self.rpm is not None or self.ipm is not None

    def admit(self, key: str, images: int = 1) -> Admission:
        """Take one request token and ``images`` image tokens for ``key``, or refuse."""
        now = self._clock()
        with self._lock:
            requests, pictures = self._for(key, now)
            waits = []
            if requests is not None:
                requests.refill(now)
                waits.append(("requests", requests.wait_for(1)))
            if pictures is not None:
                pictures.refill(now)
                waits.append(("images", pictures.wait_for(max(1, images))))
            refused = [(wait, name) for name, wait in waits if wait > 0]
            if refused:
                wait, name = max(refused)
                return Admission(False, wait, name, self._headers(requests))
            if requests is not None:
                requests.tokens -= 1
            if pictures is not None:
                pictures.tokens -= max(1, images)
            return Admission(True, headers=self._headers(requests))

    def reset(self) -> None:
        """Forget every key's buckets (they start full again)."""
        with self._lock:
            self._buckets.clear()

    def _for(self, key: str, now: float) -> tuple[TokenBucket | None, TokenBucket | None]:
        digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
        found = self._buckets.get(digest)
        if found is None:
            found = (_bucket(self.rpm, self.burst, now), _bucket(self.ipm, self.image_burst, now))
            self._buckets[digest] = found
        return found

    def _headers(self, requests: TokenBucket | None) -> dict[str, str] | None:
        if not self.headers or requests is None or self.rpm is None:
            return None
        return {
            "x-ratelimit-limit-requests": str(int(self.rpm)),
            "x-ratelimit-remaining-requests": str(int(requests.tokens)),
            "x-ratelimit-reset-requests": format_reset(requests.full_in()),
        }


def _size(per_minute: float | None, burst: float | None) -> float:
    if burst is not None:
        return max(1.0, float(burst))
    return max(1.0, (per_minute or 60.0) / 60.0)


def _bucket(per_minute: float | None, capacity: float, now: float) -> TokenBucket | None:
    return None if per_minute is None else TokenBucket(per_minute / 60.0, capacity, now)


def format_reset(seconds: float) -> str:
    """OpenAI's duration notation: ``"250ms"``, ``"1.5s"``, ``"6m0s"``, ``"1h2m3s"``.

    Example::

        >>> format_reset(0.25), format_reset(1.5), format_reset(360)
        ('250ms', '1.5s', '6m0s')
    """
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours >= 1:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes >= 1:
        return f"{int(minutes)}m{text}"
    return text
