"""A private event loop on a daemon thread, so sync code can run coroutines anywhere.

Jupyter already runs an event loop on the kernel's thread, so ``asyncio.run`` fails there and
patching that loop (nest_asyncio) is fragile. Instead, coroutines run on one background loop
of our own: :meth:`LoopThread.run` blocks the caller until the result is ready, and a
``KeyboardInterrupt`` in the caller (the notebook's Interrupt) cancels the task, lets it clean
up (record the cancellation), then propagates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from cometnb._core.session import current

__all__ = ["LoopThread", "loop_thread"]

T = TypeVar("T")

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
        """Schedule ``coro`` on the private loop; cancelling the future cancels the task."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and wait; an interrupt cancels it and re-raises."""
        if self._on_own_thread():
            coro.close()
            raise RuntimeError("LoopThread.run() called from its own loop; await instead")
        loop = self.loop
        call = _BlockingCall(coro)
        try:
            loop.call_soon_threadsafe(call.start, loop)
            return call.future.result()
        except KeyboardInterrupt:
            call.interrupt(loop)
            raise

    def _on_own_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and join the thread (it is started again on next use)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
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
        self.task = loop.create_task(self.coro)
        self.task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[T]) -> None:
        self.coro.close()  # no-op when it ran; silences "never awaited" if cancelled unstarted
        if task.cancelled():
            self.future.cancel()
        elif (error := task.exception()) is not None:
            self.future.set_exception(error)
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


def loop_thread() -> LoopThread:
    """The session's private loop thread (one daemon thread, created lazily)."""
    return current().part(LoopThread)
