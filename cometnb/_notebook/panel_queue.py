"""The panel's generation queue: run jobs one after another without blocking the kernel.

One job: scheduling. Inside a kernel, a widget callback runs on the kernel's asyncio loop, so
the queue is drained by a task on that loop (the kernel keeps answering while it waits).
Outside a running loop (scripts, unit tests) it is drained on cometnb's private loop thread
(``_loop.py``), and :meth:`JobQueue.wait` lets the caller block until the queue is empty.
What a job *does* is the ``work`` coroutine the panel passes in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from cometnb._core.models import ImageRequest

__all__ = ["Job", "JobQueue"]

JobState = Literal["queued", "running", "ok", "error", "cancelled"]


@dataclass
class Job:
    """One queued generation and what became of it."""

    request: ImageRequest
    tags: tuple[str, ...] = ()
    state: JobState = "queued"
    started: float | None = None  # time.monotonic() when it began running
    result: Any = None  # the Generation on success
    error: BaseException | None = None
    note: str | None = None  # the latest client event, described for the status line

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started


class JobQueue:
    """Run ``work(job)`` for each submitted job, in order, one at a time.

    ``on_change()`` is called (on the loop) whenever the running job or queue length changes.

    Example::

        >>> async def work(job): job.result = job.request.prompt.upper()
        >>> q = JobQueue(work, on_change=lambda: None)
        >>> q.submit(Job(ImageRequest("a cat"))).request.prompt
        'a cat'
        >>> q.wait(5)
        True
    """

    def __init__(
        self, work: Callable[[Job], Awaitable[None]], on_change: Callable[[], None]
    ) -> None:
        self._work = work
        self._on_change = on_change
        self._pending: deque[Job] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._job_task: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | concurrent.futures.Future[None] | None = None
        self.current: Job | None = None
        self.done: list[Job] = []

    @property
    def queued(self) -> int:
        """Jobs waiting behind the running one."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """True while a job runs or waits (False already during the final ``on_change``)."""
        return self._draining

    def submit(self, job: Job) -> Job:
        """Queue ``job``; start draining if nothing runs. Returns ``job``."""
        with self._lock:
            self._pending.append(job)
            self._idle.clear()
            start = not self._draining
            self._draining = True
        if start:
            self._start()
        return job

    def cancel(self) -> bool:
        """Cancel the running job (queued ones still run). True if there was one."""
        loop, task = self._loop, self._job_task
        if loop is None or task is None or task.done():
            return False
        loop.call_soon_threadsafe(task.cancel)
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job has finished; False on timeout.

        Not from the loop that runs the jobs (inside a kernel: not from a cell), since the
        jobs need that very loop to progress.
        """
        if self._on_own_loop():
            raise RuntimeError("wait() would block the loop the generations run on")
        return self._idle.wait(timeout)

    # --- internals ---------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()  # a kernel: its loop runs widget callbacks
        except RuntimeError:
            from cometnb._client.loop import loop_thread

            runner = loop_thread()
            self._loop = runner.loop
            self._drainer = runner.submit(self._drain())
            return
        self._loop = loop
        # Keep a reference: the loop holds tasks only weakly.
        self._drainer = loop.create_task(self._drain())

    def _on_own_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    self.current = None
                    break
                job = self._pending.popleft()
                self.current = job
            await self._run(job)
        self._safe_change()
        with self._lock:
            if not self._draining:  # a submit() during on_change started a new drain
                self._idle.set()

    async def _run(self, job: Job) -> None:
        job.state, job.started = "running", time.monotonic()
        self._safe_change()
        task = asyncio.ensure_future(self._work(job))
        self._job_task = task
        # asyncio.wait does not raise when `task` is cancelled, only when _drain itself is.
        await asyncio.wait([task])
        self._job_task = None
        if task.cancelled():
            job.state = "cancelled"
        elif task.exception() is not None:
            job.state, job.error = "error", task.exception()
        elif job.state == "running":
            job.state = "ok"
        self.done.append(job)

    def _safe_change(self) -> None:
        # A failing UI callback must not stop the queue (the panel reports its own errors).
        with contextlib.suppress(Exception):
            self._on_change()
