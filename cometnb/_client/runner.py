"""Expand a grid of requests and run it concurrently off the caller's thread.

The requests run as asyncio tasks on the client's private loop thread
(:mod:`cometnb._client.loop`), at most ``concurrency`` at a time. The calling thread (the
kernel's main thread) only waits, in short slices, so that an interrupt (Ctrl-C, the
notebook's stop button) lands promptly; it then cancels the tasks on the loop thread and waits
briefly while the client records them as "cancelled". Progress (per-cell state and the
client's :class:`ClientEvent` s) is collected from the loop thread into plain
:class:`~cometnb._core.progress.CellProgress` objects the caller reads on its own thread, so
front ends never touch display machinery from another thread.

This module is part of the client layer: it never imports IPython or ipywidgets.
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
from typing import Any, Literal

from cometnb._client.limiter import AdaptiveLimit, Slot
from cometnb._core.budget import SpendGuard, admitted
from cometnb._core.errors import BudgetError, CancelledError, CometError, ValidationError
from cometnb._core.generations import ClientEvent, Generation, Grid, GridCell, ImageRequest
from cometnb._core.progress import CellProgress, describe_event
from cometnb._core.protocols import AsyncRunner
from cometnb._core.text import clip
from cometnb._core.validation import check_stored

__all__ = ["AXIS_FIELDS", "cell_label", "expand_grid", "run_grid", "validate_grid"]

# Grid axes in display order, each with the API field it sets.
AXIS_FIELDS: dict[str, str] = {
    "prompt": "prompt",
    "model": "model",
    "size": "size",
    "quality": "quality",
    "format": "output_format",
    "background": "background",
}

log = logging.getLogger("cometnb")

# How long the waiting thread sleeps between checks: short enough for a prompt interrupt.
POLL_S = 0.1
# After an interrupt, how long to wait for the tasks to record themselves as cancelled.
CANCEL_GRACE_S = 3.0


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


class _GridRun:
    """The coroutine side of :func:`run_grid`: one task per cell, bounded by a semaphore."""

    def __init__(
        self,
        client: AsyncRunner,
        grid: Grid,
        concurrency: int,
        tags: Sequence[str],
        origin: str | None,
        guard: SpendGuard | None = None,
    ) -> None:
        self.client = client
        self.guard = guard
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
                # Checked when its turn comes, not at the start: what is left by then counts
                # what the requests before it actually cost.
                if self.guard is None:
                    progress.state, progress.started = "running", time.monotonic()
                    gen = await self._request(cell.request, progress, slot)
                else:
                    refused = self.guard.before_send(cell.request)
                    if refused is not None:
                        _finish(cell, progress, _failed(cell.request, refused, status="cancelled"))
                        return
                    progress.state, progress.started = "running", time.monotonic()
                    with admitted():  # this guard checked it: the client must not again
                        gen = await self._request(cell.request, progress, slot)
                    self.guard.after(cell.request, gen.cost)
        except (asyncio.CancelledError, CancelledError):
            _finish(cell, progress, _failed(cell.request, cancelled_error(progress.sent)))
            raise
        _finish(cell, progress, gen)

    async def _request(
        self, request: ImageRequest, progress: CellProgress, slot: Slot
    ) -> Generation:
        def on_event(event: ClientEvent) -> None:
            progress.note = describe_event(event)
            if event.kind == "sending":
                progress.sent = True
            # Under a budget the slot is kept until this request's cost is known, so the next
            # one is admitted against what this one actually cost, not only its estimate.
            if self.guard is None or event.kind != "received":
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


UNSENT = "cancelled before sending (nothing billed)"
SENT = "cancelled after sending (may be billed)"


def cancelled_error(sent: bool) -> CancelledError:
    """The error of a cell stopped by an interrupt: whether it had been sent matters."""
    return CancelledError(SENT if sent else UNSENT, sent=sent)


def _failed(
    request: ImageRequest,
    error: CometError,
    *,
    status: Literal["error", "cancelled"] | None = None,
) -> Generation:
    if status is None:
        status = "cancelled" if isinstance(error, CancelledError) else "error"
    return Generation(
        request=request.to_body(), error=error, status=status, record_id=error.record_id
    )


def _finish(cell: GridCell, progress: CellProgress, gen: Generation) -> None:
    cell.generation = gen
    if gen.ok:
        progress.state = "done"
    elif isinstance(gen.error, BudgetError):
        progress.state = "not sent (budget)"
    else:
        progress.state = "cancelled" if gen.status == "cancelled" else "failed"


def run_grid(
    client: AsyncRunner,
    grid: Grid,
    concurrency: int,
    on_update: Callable[[Sequence[CellProgress]], None] | None = None,
    *,
    tags: Sequence[str] = (),
    origin: str | None = None,
    poll_s: float = POLL_S,
    guard: SpendGuard | None = None,
) -> Grid:
    """Run every cell of ``grid`` (filling ``cell.generation``) and return the grid.

    ``on_update(progress)`` is called on the calling thread every ``poll_s`` while the grid
    runs, and once at the end; it gets one :class:`CellProgress` per cell. A failed request
    becomes a failed Generation in its cell (it does not stop the others). An interrupt
    cancels every request still in flight and raises :class:`CancelledError`. With a
    ``guard`` (a budget), a request whose estimate no longer fits what is left when its turn
    comes is not sent: its cell reads "not sent (budget)" and holds a ``BudgetError``; nothing
    in flight stops. Without a guard, the client checks each request against
    ``CometImg.budget`` itself.
    """
    check_stored(tags, origin, None)  # refused before any cell is sent, not once per cell
    grid_run = _GridRun(client, grid, concurrency, tags, origin, guard)
    future = _submit(grid_run.run())
    try:
        _wait(future, grid_run, on_update, poll_s)
    except KeyboardInterrupt:
        future.cancel()  # cancels the task on the loop thread
        _settle(grid_run)
        _last_update(on_update, grid_run.progress)
        raise _interrupted(grid_run.progress) from None
    _last_update(on_update, grid_run.progress)
    return grid


def _interrupted(progress: Sequence[CellProgress]) -> CancelledError:
    if len(progress) == 1:
        return CancelledError(
            "interrupted: the request was cancelled.",
            hint="If it had reached the server it may still be billed.",
        )
    stopped = [p for p in progress if p.state == "cancelled"]
    sent = sum(1 for p in stopped if p.sent)
    parts = [f"{len(stopped) - sent} cancelled before sending (nothing billed)"]
    if sent:
        parts.append(f"{sent} cancelled after sending (may be billed)")
    return CancelledError(
        f"interrupted: {len(stopped)} of {len(progress)} requests cancelled: {', '.join(parts)}.",
        hint="Finished images are in the history.",
    )


def _wait(
    future: concurrent.futures.Future[None],
    grid_run: _GridRun,
    on_update: Callable[[Sequence[CellProgress]], None] | None,
    poll_s: float,
) -> None:
    # Short, repeated waits instead of one long one: KeyboardInterrupt is delivered to the
    # main thread between them. (Not future.result(timeout=...): its timeout is the builtin
    # TimeoutError, which the run itself may raise, and would then be taken for "not yet".)
    while not concurrent.futures.wait((future,), timeout=poll_s).done:
        if on_update is not None and not _safe_update(on_update, grid_run.progress):
            on_update = None  # a broken progress display must not lose paid results
    future.result()  # re-raises what went wrong in the run itself (a bug, not a request)


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


def _settle(grid_run: _GridRun) -> None:
    """Give cancelled tasks a moment to record themselves; mark any straggler cancelled."""
    deadline = time.monotonic() + CANCEL_GRACE_S
    try:
        while not grid_run.settled.wait(POLL_S) and time.monotonic() < deadline:
            pass
    except KeyboardInterrupt:
        pass  # a second interrupt: stop waiting
    for cell, progress in zip(grid_run.grid.cells, grid_run.progress, strict=True):
        if not progress.finished:
            _finish(cell, progress, _failed(cell.request, cancelled_error(progress.sent)))
