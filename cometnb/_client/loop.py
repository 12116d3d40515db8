"""A private event loop on a daemon thread, so sync code can run coroutines anywhere.

Jupyter already runs an event loop on the kernel's thread, so ``asyncio.run`` fails there and
patching that loop (nest_asyncio) is fragile. Instead, coroutines run on one background loop
of our own: :meth:`LoopThread.run` blocks the caller until the result is ready, and a
``KeyboardInterrupt`` in the caller (the notebook's Interrupt) cancels the task, lets it clean
up (record the cancellation), then propagates. :meth:`LoopThread.call` is the same for a caller
on another event loop (``await``). A :class:`Relay` carries callbacks the task makes (progress,
partial images) back to the caller's thread, in order, while it waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from cometnb._core.session import current
from cometnb._storage.preview_queue import previews

__all__ = ["Escaped", "LoopThread", "Relay", "carrying_interrupts", "loop_thread"]

T = TypeVar("T")


class Pool(Protocol):
    """What :meth:`LoopThread.adopt` closes: a connection pool used on the loop."""

    async def aclose(self) -> None: ...


# How long an interrupted run waits for its task to finish cleaning up before giving up on it.
CANCEL_GRACE_S = 10.0


class LoopThread:
    """One daemon thread running its own asyncio loop, started on first use.

    Example::

        >>> async def answer() -> int:
        ...     return 42
        >>> LoopThread().run(answer())
        42
    """

    def __init__(self, name: str = "cometnb-loop") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Pools used on this loop by clients still alive: closed here when the thread stops.
        self._pools: weakref.WeakSet[Pool] = weakref.WeakSet()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop (the thread is started if needed)."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait(5.0)
        self._loop = loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the private loop; cancelling the future cancels the task. A
        ``KeyboardInterrupt`` raised inside it comes out of the future as :class:`Escaped`."""
        return asyncio.run_coroutine_threadsafe(carrying_interrupts(coro), self.loop)

    def run(self, coro: Coroutine[Any, Any, T], relay: Relay | None = None) -> T:
        """Run ``coro`` on the private loop and wait; an interrupt cancels it and re-raises.

        With ``relay``, the callbacks the task posts to it run on this thread while it waits.
        """
        if self.on_own_thread():
            coro.close()
            raise RuntimeError(
                "cometnb's blocking call was made on its own loop's thread (from an "
                "on_result callback?); await the async version there instead"
            )
        loop = self.loop
        call = _BlockingCall(coro)
        try:
            # The call's previews start once it has returned (they would slow its last steps).
            with previews().held():
                loop.call_soon_threadsafe(call.start, loop)
                if relay is None:
                    return call.future.result()
                return relay.serve(call.future)
        except KeyboardInterrupt:
            call.interrupt(loop)
            raise

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the private loop from another event loop; cancelling the
        caller cancels it and waits (off the caller's loop) for its clean-up."""
        if self.on_own_thread():
            return await coro
        loop = self.loop
        call = _BlockingCall(coro)
        loop.call_soon_threadsafe(call.start, loop)
        try:
            return await asyncio.wrap_future(call.future)
        except asyncio.CancelledError:
            await asyncio.to_thread(call.interrupt, loop)
            raise

    def on_own_thread(self) -> bool:
        """Whether the caller runs on this loop's thread (where blocking on it would hang)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def adopt(self, pool: Pool) -> None:
        """Close ``pool`` on this loop when the thread stops, if it is still open then (its
        connections belong to the loop and could not be closed after it)."""
        self._pools.add(pool)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and join the thread (it is started again on next use)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        pools, self._pools = list(self._pools), weakref.WeakSet()
        if pools and loop.is_running() and thread is not threading.current_thread():
            # A pool that will not close must not stop the shutdown.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_close_all(pools), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()


class _BlockingCall(Generic[T]):
    """One :meth:`LoopThread.run` call: its task, result and cancellation, across two threads.

    A ``KeyboardInterrupt`` can land anywhere in the caller, even before the task exists, so
    cancellation goes through the loop's FIFO queue: if ``start`` was queued it runs first.
    """

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self.coro = coro
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.task: asyncio.Task[T] | None = None
        self.cancelled = False
        self.cancel_seen = threading.Event()
        self.finished = threading.Event()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:  # on the loop thread
        if self.cancelled:
            return
        self.task = loop.create_task(carrying_interrupts(self.coro))
        self.task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[T]) -> None:
        self.coro.close()  # no-op when it ran; silences "never awaited" if cancelled unstarted
        if self.future.done():  # cancelled by an awaiting caller (LoopThread.call)
            pass
        elif task.cancelled():
            self.future.cancel()
        elif (error := task.exception()) is not None:
            self.future.set_exception(error.escaped if isinstance(error, Escaped) else error)
        else:
            self.future.set_result(task.result())
        self.finished.set()

    def cancel(self) -> None:  # on the loop thread
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()
        self.cancel_seen.set()

    def interrupt(self, loop: asyncio.AbstractEventLoop) -> None:  # on the caller's thread
        try:
            loop.call_soon_threadsafe(self.cancel)
        except RuntimeError:  # the loop was stopped meanwhile
            self.coro.close()
            return
        # Let the task record the cancellation (history) before the caller moves on.
        if self.cancel_seen.wait(CANCEL_GRACE_S) and self.task is not None:
            self.finished.wait(CANCEL_GRACE_S)
        elif self.task is None:
            self.coro.close()


async def _close_all(pools: list[Pool]) -> None:
    await asyncio.gather(*(pool.aclose() for pool in pools), return_exceptions=True)


class Escaped(Exception):
    """A ``KeyboardInterrupt`` or ``SystemExit`` carried out of a task to the caller."""

    def __init__(self, escaped: BaseException) -> None:
        super().__init__(type(escaped).__name__)
        self.escaped = escaped


async def carrying_interrupts(coro: Awaitable[T]) -> T:
    """Await ``coro``; a ``KeyboardInterrupt`` or ``SystemExit`` raised inside it (a callback, a
    test transport) comes out as :class:`Escaped`, an ordinary exception. Raised out of a task,
    asyncio would re-raise it out of the loop and stop the session's thread: every task whose
    coroutine may raise one is started through this, and its awaiter takes ``.escaped`` back."""
    try:
        return await coro
    except (KeyboardInterrupt, SystemExit) as exc:
        raise Escaped(exc) from None


class Relay:
    """Callbacks posted from the loop thread, run on the waiting caller's thread in order.

    Example::

        >>> relay = Relay()
        >>> async def work() -> int:
        ...     relay.post(lambda: print("progress"))
        ...     return 1
        >>> LoopThread().run(work(), relay)
        progress
        1
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()

    def post(self, thunk: Callable[[], object]) -> None:
        """Queue ``thunk`` for the caller's thread (never blocks the loop)."""
        self._queue.put(thunk)

    def serve(self, future: concurrent.futures.Future[T]) -> T:
        """Run what is posted until ``future`` is done (posts made before it, too); its result."""
        future.add_done_callback(lambda _: self._queue.put(None))
        while (thunk := self._queue.get()) is not None:
            thunk()
        return future.result()


def loop_thread() -> LoopThread:
    """The session's private loop thread (one daemon thread, created lazily)."""
    return current().part(LoopThread)
