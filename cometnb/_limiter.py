"""A concurrency limit that backs off after a 429 (API_FACTS.md §4: "lower concurrency").

Like a semaphore, but :meth:`AdaptiveLimit.throttle` halves the number of requests allowed
in flight for ``cooldown_s`` seconds; requests already running finish normally, new ones wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["AdaptiveLimit"]


class AdaptiveLimit:
    """An async context manager admitting at most :attr:`current` holders at a time.

    Example::

        >>> limit = AdaptiveLimit(4)
        >>> limit.throttle(); limit.current
        2
    """

    def __init__(
        self,
        limit: int,
        *,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = max(1, int(limit))
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._reduced = self.limit
        self._until = 0.0
        self._active = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def current(self) -> int:
        """How many requests may be in flight right now."""
        if self._reduced < self.limit and self._clock() >= self._until:
            self._reduced = self.limit
        return self._reduced

    @property
    def active(self) -> int:
        return self._active

    def throttle(self) -> None:
        """Halve the limit (never below 1) and restart the cool-down period."""
        self._reduced = max(1, self.current // 2)
        self._until = self._clock() + self.cooldown_s

    async def __aenter__(self) -> AdaptiveLimit:
        # Single-threaded asyncio: no lock needed, only futures to park waiters on.
        while self._active >= self.current:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self._active += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Synchronous on purpose: a cancelled task must still give its slot back.
        self._active -= 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # every waiter re-checks the (maybe reduced) limit
