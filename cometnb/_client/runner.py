"""Expand a grid of requests and run it concurrently off the caller's thread.

The requests run as asyncio tasks on the client's private loop thread (``_loop.py``), at most
``concurrency`` at a time. The calling thread (the kernel's main thread) only waits, in short
slices, so that an interrupt (Ctrl-C, the notebook's stop button) lands promptly; it then
cancels the tasks on the loop thread and waits briefly while the client records them as
"cancelled". Progress (per-cell state and the client's :class:`ClientEvent` s) is collected
from the loop thread into plain objects the caller reads on its own thread, so front ends never
touch display machinery from another thread.

This module is part of the core: it never imports IPython or ipywidgets.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cometnb._client.limiter import AdaptiveLimit, Slot
from cometnb._core.errors import CancelledError, CometError, ValidationError
from cometnb._core.models import ClientEvent, Generation, Grid, GridCell, ImageRequest
from cometnb._core.protocols import AsyncRunner
from cometnb._core.text import clip

__all__ = [
    "AXIS_FIELDS",
    "CellProgress",
    "cell_label",
    "describe_event",
    "expand_grid",
    "run_grid",
    "validate_grid",
    "with_setting_defaults",
]

# Grid axes in display order, each with the API field it sets.
AXIS_FIELDS: dict[str, str] = {
    "prompt": "prompt",
    "model": "model",
    "size": "size",
    "quality": "quality",
    "format": "output_format",
    "background": "background",
}

State = Literal["queued", "running", "done", "failed", "cancelled"]

log = logging.getLogger("cometnb")

# How long the waiting thread sleeps between checks: short enough for a prompt interrupt.
POLL_S = 0.1
# After an interrupt, how long to wait for the tasks to record themselves as cancelled.
CANCEL_GRACE_S = 3.0


@dataclass
class CellProgress:
    """Live state of one cell, written on the loop thread and read on the caller's.

    Example::

        >>> p = CellProgress()
        >>> p.text(now=0.0)
        'queued'
    """

    state: State = "queued"
    started: float | None = None  # time.monotonic() when the request started
    note: str | None = None  # the latest client event, e.g. "waiting 2 s after HTTP 429"
    partial: bytes | None = None  # the latest streamed preview (raw image bytes)
    partial_index: int | None = None

    def text(self, now: float | None = None) -> str:
        """One short line: state, elapsed seconds and the latest event."""
        if self.state != "running" or self.started is None:
            return self.state
        elapsed = int((time.monotonic() if now is None else now) - self.started)
        return f"{elapsed} s · {self.note}" if self.note else f"{elapsed} s"

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


def describe_event(event: ClientEvent) -> str:
    """A status-line text for a client event, e.g. ``"waiting 2 s after HTTP 429"``."""
    if event.kind == "waiting":
        wait = _seconds(event.wait_s)
        return f"waiting {wait} s after {event.reason}" if event.reason else f"waiting {wait} s"
    if event.kind == "sending":
        return "sending" if event.attempt <= 1 else f"retrying (attempt {event.attempt})"
    if event.kind == "partial":
        index = 0 if event.partial_index is None else event.partial_index
        return f"partial image {index + 1} received"
    if event.kind == "received":
        return "decoding the image"
    if event.kind == "downloading":
        return "downloading the image"
    return "saving to history"


def _seconds(value: float | None) -> str:
    if value is None:
        return "a few"
    return str(round(value)) if value >= 1 or value == 0 else f"{value:.1f}"


# --- grid expansion and validation -----------------------------------------------------------


def expand_grid(base: ImageRequest, axes: Mapping[str, Sequence[Any]]) -> Grid:
    """The cartesian product of ``axes`` applied to ``base``: one cell per combination.

    >>> grid = expand_grid(ImageRequest("a cat"), {"size": ["1024x1024", "1536x1024"]})
    >>> [c.request.fields["size"] for c in grid.cells]
    ['1024x1024', '1536x1024']
    """
    names = list(axes)
    cells = []
    for combo in itertools.product(*(axes[name] for name in names)):
        coords = dict(zip(names, combo, strict=True))
        overrides = {AXIS_FIELDS.get(name, name): value for name, value in coords.items()}
        cells.append(GridCell(coords=coords, request=base.with_overrides(**overrides)))
    return Grid(axes={name: list(axes[name]) for name in names}, cells=cells)


def with_setting_defaults(grid: Grid, defaults: Mapping[str, Any]) -> Grid:
    """Add default fields (``CometImg.size``/``.quality``) to cells that lack them.

    As in ``Client.generate``, a default the cell's model rejects is skipped (the user did not
    ask for it in this cell); a cell that names the field keeps its own value.
    """
    for cell in grid.cells:
        for name, default in defaults.items():
            if default is None or name in cell.request.fields:
                continue
            candidate = cell.request.with_overrides(**{name: default})
            try:
                candidate.validate()
            except ValidationError as exc:
                if exc.field == name:
                    continue
            cell.request = candidate
    return grid


def cell_label(cell: GridCell, limit: int = 40) -> str:
    """``"model=dall-e-3, size=1024x1024"`` (long prompts clipped)."""
    return ", ".join(f"{name}={clip(str(value), limit)}" for name, value in cell.coords.items())


def validate_grid(grid: Grid, *, listed: int = 3) -> None:
    """Validate every cell; raise one :class:`ValidationError` naming the invalid cells.

    Nothing may be sent when any cell is invalid, so this runs before the first request.
    """
    problems: list[tuple[GridCell, ValidationError]] = []
    for cell in grid.cells:
        try:
            cell.request.validate()
        except ValidationError as exc:
            problems.append((cell, exc))
    if not problems:
        return
    first = problems[0][1]
    if len(grid.cells) == 1:
        raise ValidationError(first.message, field=first.field, hint="Nothing was sent.")
    shown = "; ".join(f"[{cell_label(c)}] {e.message}" for c, e in problems[:listed])
    more = f"; and {len(problems) - listed} more" if len(problems) > listed else ""
    raise ValidationError(
        f"{len(problems)} of {len(grid.cells)} requests are invalid: {shown}{more}.",
        field=first.field,
        hint="Nothing was sent.",
    )


# --- running ---------------------------------------------------------------------------------


def _submit(coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
    """Start ``coro`` on the client's private loop thread."""
    from cometnb._client.loop import loop_thread

    return loop_thread().submit(coro)


class _GridJob:
    """The coroutine side of :func:`run_grid`: one task per cell, bounded by a semaphore."""

    def __init__(
        self,
        client: AsyncRunner,
        grid: Grid,
        concurrency: int,
        tags: Sequence[str],
        origin: str | None,
    ) -> None:
        self.client = client
        self.grid = grid
        self.concurrency = max(1, concurrency)
        self.tags = tuple(tags)
        self.origin = origin
        self.progress = [CellProgress() for _ in grid.cells]
        self.settled = threading.Event()  # set when every task has finished, however

    async def run(self) -> None:
        try:
            limit = AdaptiveLimit(self.concurrency)
            tasks = [self._cell(i, limit) for i in range(len(self.grid.cells))]
            # return_exceptions: wait for *every* task, also after a cancel, so each cancelled
            # request is recorded before the caller is told the grid has settled.
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    raise outcome  # a bug, not a failed request (those become Generations)
        finally:
            self.settled.set()

    async def _cell(self, index: int, limit: AdaptiveLimit) -> None:
        cell, progress = self.grid.cells[index], self.progress[index]
        try:
            async with limit.slot() as slot:
                progress.state, progress.started = "running", time.monotonic()
                gen = await self._request(cell.request, progress, slot)
        except (asyncio.CancelledError, CancelledError):
            _finish(cell, progress, _failed(cell.request, CancelledError("cancelled")))
            raise
        _finish(cell, progress, gen)

    async def _request(
        self, request: ImageRequest, progress: CellProgress, slot: Slot
    ) -> Generation:
        def on_event(event: ClientEvent) -> None:
            progress.note = describe_event(event)
            slot.follow(event)
            if event.kind == "partial" and event.partial_image is not None:
                progress.partial, progress.partial_index = event.partial_image, event.partial_index

        def on_partial(index: int, data: bytes) -> None:
            progress.partial, progress.partial_index = data, index

        try:
            return await self.client.arun(
                request,
                on_partial=on_partial,
                on_event=on_event,
                tags=self.tags,
                origin=self.origin,
            )
        except CancelledError:
            raise
        except CometError as exc:
            return _failed(request, exc)


def _failed(request: ImageRequest, error: CometError) -> Generation:
    status: Literal["error", "cancelled"]
    status = "cancelled" if isinstance(error, CancelledError) else "error"
    return Generation(
        request=request.to_body(), error=error, status=status, record_id=error.record_id
    )


def _finish(cell: GridCell, progress: CellProgress, gen: Generation) -> None:
    cell.generation = gen
    progress.state = "done" if gen.ok else ("cancelled" if gen.status == "cancelled" else "failed")


def run_grid(
    client: AsyncRunner,
    grid: Grid,
    concurrency: int,
    on_update: Callable[[Sequence[CellProgress]], None] | None = None,
    *,
    tags: Sequence[str] = (),
    origin: str | None = None,
    poll_s: float = POLL_S,
) -> Grid:
    """Run every cell of ``grid`` (filling ``cell.generation``) and return the grid.

    ``on_update(progress)`` is called on the calling thread every ``poll_s`` while the grid
    runs, and once at the end; it gets one :class:`CellProgress` per cell. A failed request
    becomes a failed Generation in its cell (it does not stop the others). An interrupt
    cancels every request still in flight and raises :class:`CancelledError`.
    """
    job = _GridJob(client, grid, concurrency, tags, origin)
    future = _submit(job.run())
    try:
        _wait(future, job, on_update, poll_s)
    except KeyboardInterrupt:
        future.cancel()  # cancels the task on the loop thread
        _settle(job)
        _last_update(on_update, job.progress)
        raise _interrupted(job.progress) from None
    _last_update(on_update, job.progress)
    return grid


def _interrupted(progress: Sequence[CellProgress]) -> CancelledError:
    if len(progress) == 1:
        return CancelledError(
            "interrupted: the request was cancelled.",
            hint="If it had reached the server it may still be billed.",
        )
    stopped = sum(1 for p in progress if p.state == "cancelled")
    return CancelledError(
        f"interrupted: {stopped} of {len(progress)} requests cancelled.",
        hint="Finished images are in the history.",
    )


def _wait(
    future: concurrent.futures.Future[None],
    job: _GridJob,
    on_update: Callable[[Sequence[CellProgress]], None] | None,
    poll_s: float,
) -> None:
    # Short, repeated waits instead of one long one: KeyboardInterrupt is delivered to the
    # main thread between them. (Not future.result(timeout=...): its timeout is the builtin
    # TimeoutError, which the job itself may raise, and would then be taken for "not yet".)
    while not concurrent.futures.wait((future,), timeout=poll_s).done:
        if on_update is not None and not _safe_update(on_update, job.progress):
            on_update = None  # a broken progress display must not lose paid results
    future.result()  # re-raises what went wrong in the job itself (a bug, not a request)


def _safe_update(
    on_update: Callable[[Sequence[CellProgress]], None], progress: Sequence[CellProgress]
) -> bool:
    try:
        on_update(progress)
    except Exception:
        log.exception("cometnb: the progress display failed; the requests keep running")
        return False
    return True


def _last_update(
    on_update: Callable[[Sequence[CellProgress]], None] | None, progress: Sequence[CellProgress]
) -> None:
    if on_update is None:
        return
    with contextlib.suppress(KeyboardInterrupt):  # another Ctrl-C: the cell is stopping anyway
        _safe_update(on_update, progress)


def _settle(job: _GridJob) -> None:
    """Give cancelled tasks a moment to record themselves; mark any straggler cancelled."""
    deadline = time.monotonic() + CANCEL_GRACE_S
    try:
        while not job.settled.wait(POLL_S) and time.monotonic() < deadline:
            pass
    except KeyboardInterrupt:
        pass  # a second interrupt: stop waiting
    for cell, progress in zip(job.grid.cells, job.progress, strict=True):
        if not progress.finished:
            _finish(cell, progress, _failed(cell.request, CancelledError("cancelled")))
