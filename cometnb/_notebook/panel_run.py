"""Running and showing the panel's generations: the queue that runs :class:`PanelTask` s one
after another without blocking, and the result cards.

The queue only schedules. Inside a kernel, a widget callback runs on the kernel's asyncio
loop, so the queue is drained by a coroutine on that loop (the kernel keeps answering while it
waits). Outside a running loop (scripts, unit tests) it is drained on cometnb's private loop
thread (:mod:`cometnb._client.loop`), and :meth:`TaskQueue.wait` lets the caller block until
the queue is empty. What a task *does* is the ``work`` coroutine the panel passes in.

The panel's results: one card per generation (newest first), each with its own Edit button.

Each result is a small box of the card (the shared HTML view) and, for a result with images,
an "Edit" button under it that loads that result into the edit strip. The box of buttons keeps
the ``cometnb-result-actions`` class (and the button ``cometnb-edit-result``), so a page can
find the Edit of the first (newest) card as ``.cometnb-result-actions .cometnb-edit-result``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import ipywidgets as W

from cometnb._core.generations import ImageRequest

__all__ = ["PanelTask", "ResultGallery", "TaskQueue"]


TaskState = Literal["queued", "running", "ok", "error", "cancelled"]


@dataclass
class PanelTask:
    """One generation the panel queued, and what became of it (not an asyncio task)."""

    request: ImageRequest
    tags: tuple[str, ...] = ()
    state: TaskState = "queued"
    started: float | None = None  # time.monotonic() when it began running
    result: Any = None  # the Generation on success
    error: BaseException | None = None
    note: str | None = None  # the latest client event, described for the status line
    sent: bool = False  # its POST went out (a cancel from then on may be billed)

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started


class TaskQueue:
    """Run ``work(task)`` for each submitted task, in order, one at a time.

    ``on_change()`` is called (on the loop) whenever the running task or queue length changes.

    Example::

        >>> async def work(task): task.result = task.request.prompt.upper()
        >>> q = TaskQueue(work, on_change=lambda: None)
        >>> q.submit(PanelTask(ImageRequest("a cat"))).request.prompt
        'a cat'
        >>> q.wait(5)
        True
    """

    def __init__(
        self, work: Callable[[PanelTask], Awaitable[None]], on_change: Callable[[], None]
    ) -> None:
        self._work = work
        self._on_change = on_change
        self._pending: deque[PanelTask] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | concurrent.futures.Future[None] | None = None
        self.current: PanelTask | None = None
        self.done: list[PanelTask] = []

    @property
    def queued(self) -> int:
        """Tasks waiting behind the running one."""
        return len(self._pending)

    @property
    def busy(self) -> bool:
        """True while a task runs or waits (False already during the final ``on_change``)."""
        return self._draining

    def submit(self, task: PanelTask) -> PanelTask:
        """Queue ``task``; start draining if nothing runs. Returns ``task``."""
        with self._lock:
            self._pending.append(task)
            self._idle.clear()
            start = not self._draining
            self._draining = True
        if start:
            self._start()
        return task

    def drop_queued(self) -> list[PanelTask]:
        """Remove the tasks waiting behind the running one (never sent); they end
        ``cancelled``. Returns them."""
        with self._lock:
            dropped = list(self._pending)
            self._pending.clear()
        for task in dropped:
            task.state = "cancelled"
            self.done.append(task)
        return dropped

    def cancel(self) -> bool:
        """Cancel the running task (queued ones still run: :meth:`drop_queued` first to stop
        them too). True if there was one."""
        loop, running = self._loop, self._running
        if loop is None or running is None or running.done():
            return False
        loop.call_soon_threadsafe(running.cancel)
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every task has finished; False on timeout.

        Not from the loop that runs the tasks (inside a kernel: not from a cell), since the
        tasks need that very loop to progress.
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
        # Keep a reference: the loop holds its asyncio tasks only weakly.
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
                task = self._pending.popleft()
                self.current = task
            await self._run(task)
        self._safe_change()
        with self._lock:
            if not self._draining:  # a submit() during on_change started a new drain
                self._idle.set()

    async def _run(self, task: PanelTask) -> None:
        task.state, task.started = "running", time.monotonic()
        self._safe_change()
        work = asyncio.ensure_future(self._work(task))
        self._running = work
        # asyncio.wait does not raise when `work` is cancelled, only when _drain itself is.
        await asyncio.wait([work])
        self._running = None
        if work.cancelled():
            task.state = "cancelled"
        elif work.exception() is not None:
            task.state, task.error = "error", work.exception()
        elif task.state == "running":
            task.state = "ok"
        self.done.append(task)

    def _safe_change(self) -> None:
        # A failing UI callback must not stop the queue (the panel reports its own errors).
        with contextlib.suppress(Exception):
            self._on_change()


if TYPE_CHECKING:
    from cometnb._core.generations import Generation


class ResultGallery(W.Box):  # type: ignore[misc]  # ipywidgets ships no type hints
    """The result cards, a wrapping row (CSS class ``cometnb-gallery``).

    ``on_edit(gen)`` runs when a card's Edit is clicked; ``wrap`` guards a callback (the panel
    turns an exception into one short line). ``edit_buttons`` lists the buttons, newest first.
    """

    def __init__(
        self,
        on_edit: Callable[[Generation], None],
        wrap: Callable[[Callable[[object], object]], Callable[[object], None]],
    ) -> None:
        super().__init__([], layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.add_class("cometnb-gallery")
        self._on_edit, self._wrap = on_edit, wrap
        self.cards: list[W.VBox] = []
        self.edit_buttons: list[W.Button] = []

    @property
    def value(self) -> str:
        """The cards' HTML, newest first (what is shown, for tests and plain-text checks)."""
        return "".join(card.children[0].value for card in self.cards)

    def show(self, newest_first: Sequence[Generation]) -> None:
        """Replace the cards with these results (newest first)."""
        self.cards, self.edit_buttons = [], []
        for gen in newest_first:
            self.cards.append(self._card(gen))
        self.children = tuple(self.cards)

    def _card(self, gen: Generation) -> W.VBox:
        from cometnb._views.cards import generation_html

        parts: list[W.Widget] = [W.HTML(generation_html(gen))]
        if gen.images:
            button = W.Button(description="Edit", icon="pencil", tooltip="Edit this result")
            button.layout.width = "90px"
            button.add_class("cometnb-edit-result")
            button.on_click(self._wrap(functools.partial(_edit, self._on_edit, gen)))
            actions = W.HBox([button])
            actions.add_class("cometnb-result-actions")
            parts.append(actions)
            self.edit_buttons.append(button)
        card = W.VBox(parts, layout=W.Layout(margin="0 8px 8px 0"))
        card.add_class("cometnb-result")
        return card


def _edit(on_edit: Callable[[Generation], None], gen: Generation, _button: object) -> None:
    on_edit(gen)  # bound per card, so each button edits its own result
