"""The concurrency limit: at most ``limit`` requests in flight, and slots given back early.

Like a semaphore. A :meth:`AdaptiveLimit.slot` can be given back early (:meth:`Slot.release`):
a request frees its slot once its response has been read, so the next request is sent while
this one's images are still being stored. Until it exits it counts as *finishing*, and at most
twice ``limit`` may be finishing at once: a whole batch can be stored while the next one is
sent, but a server that answers faster than results can be stored cannot pile up decoded
images in memory.

Rate limits are not handled here: after a 429 the number in flight stays the same and the
client's :class:`~cometnb._client.pacing.Pacer` spaces the sends instead (halving
concurrency for 30 s, as this class once did, cost 5× the time at 5% 429s).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cometnb._core.generations import ClientEvent

__all__ = ["AdaptiveLimit", "Slot"]


class AdaptiveLimit:
    """An async context manager admitting at most :attr:`current` holders at a time.

    Example::

        >>> limit = AdaptiveLimit(4)
        >>> limit.current, limit.active
        (4, 0)
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self._active = 0
        self._finishing = 0  # released early, not yet exited (their results are being stored)
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def current(self) -> int:
        """How many requests may be in flight."""
        return self.limit

    @property
    def active(self) -> int:
        return self._active

    @property
    def finishing(self) -> int:
        return self._finishing

    def _full(self) -> bool:
        return self._active >= self.current or self._finishing >= 2 * self.limit

    def slot(self) -> Slot:
        """One place in the limit, as an async context manager that may be released early."""
        return Slot(self)

    async def acquire(self) -> None:
        """Wait until fewer than :attr:`current` are in flight (and fewer than twice
        :attr:`limit` finishing), then take a place."""
        # Single-threaded asyncio: no lock needed, only futures to park waiters on.
        while self._full():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self._active += 1

    def release(self, *, finishing: bool = False) -> None:
        """Give a place back (synchronous on purpose: a cancelled task must still do it).

        ``finishing=True``: the holder goes on with local work and calls :meth:`finished`
        when done; until then it counts towards the finishing cap.
        """
        self._active -= 1
        self._finishing += finishing
        self._wake()

    def finished(self) -> None:
        """A holder that released early (``finishing=True``) is done."""
        self._finishing -= 1
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # every waiter re-checks the limit

    async def __aenter__(self) -> AdaptiveLimit:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Slot:
    """A place held in an :class:`AdaptiveLimit`; :meth:`release` may come before the exit.

    Example::

        >>> async def one(limit: AdaptiveLimit) -> None:  # doctest: +SKIP
        ...     async with limit.slot() as slot:
        ...         body = await read_response()
        ...         slot.release()        # the next request may start now
        ...         await store(body)     # … while this one is stored
    """

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit
        self._held = False
        self._finishing = False  # released early; counted as finishing until the exit

    @property
    def held(self) -> bool:
        return self._held

    def follow(self, event: ClientEvent) -> None:
        """Free the slot once the holder's answer is read: the server is done with it, so the
        next request may go out while this one is stored. (429s are the pacer's business.)"""
        if event.kind == "received":
            self.release()

    def release(self) -> None:
        """Give the place back now (the holder is finishing until it exits); once only."""
        if self._held:
            self._held, self._finishing = False, True
            self._limit.release(finishing=True)

    async def __aenter__(self) -> Slot:
        await self._limit.acquire()
        self._held = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._held:
            self._held = False
            self._limit.release()
        elif self._finishing:
            self._finishing = False
            self._limit.finished()
