"""``cometnb.batch(items, name=...)``: a resumable, named batch run with a progress bar.

Every item is validated before anything is sent. Its state lives in the history folder
(``_storage/batches.py``). An item is ``sending`` exactly while its request is on the wire: it
is committed on the client's ``"sending"`` event, right before each POST, and goes back to
``pending`` on a ``"waiting"`` event after a failure that was certainly not billed (429,
connect error, 503) — an item waiting for a concurrency slot or the rate limit is ``pending``.
Once its record is in the history it is ``done`` / ``failed`` / ``uncertain``.

Calling ``batch`` again with the same name — after an exception, a kernel restart or
``kill -9`` — sends only items not yet done, and never one that may have been billed
(``uncertain``) unless ``retry_billed=True``. An item a dead run left ``sending`` is looked up in
the history (its record names it in ``origin``): found, it counts as done, failed or uncertain
as its record says; not found, its POST had left and may have been generated and billed, so it
becomes ``uncertain`` too. Cancelling a run (an interrupt) makes an item in flight
``uncertain`` and one not yet sent ``pending``. Items in flight when a run stopped and sent
again because ``retry_billed=True`` are listed in ``Batch.resent_after_interrupt``.

Budgets: the items about to be sent are estimated together and refused before the first
request when ``CometImg.budget`` cannot cover them (``_client/batch_budget.py``); while the
batch runs, an item the budget stops is not sent and stays pending (``Batch.notes`` says so).

The requests run on the client's private loop thread, at most ``concurrency`` at a time and
paced by the client under the server's rate limit; the calling thread draws the progress bar
(done / failed / rate / ETA / spend, and when it is waiting on the rate limit) and takes
interrupts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from cometnb._client.batch import Batch, billed_note
from cometnb._client.batch_budget import BudgetCheck, session_check, stopped_note
from cometnb._client.batch_items import BatchItem, load_items
from cometnb._client.batch_recovery import (
    CANCELLED_IN_FLIGHT,
    ORIGIN,
    cancelled_in_flight,
    in_flight_before,
    may_be_billed,
    settle_in_flight,
)
from cometnb._client.clients import AsyncClient, Client
from cometnb._client.limiter import AdaptiveLimit
from cometnb._client.loop import loop_thread
from cometnb._client.pacing import RATE_LIMIT_REASON
from cometnb._core import settings as _settings
from cometnb._core.budget import SpendGuard, admitted
from cometnb._core.cost import Cost, format_usd
from cometnb._core.errors import (
    CancelledError,
    CometError,
    ValidationError,
)
from cometnb._core.models import ClientEvent, Generation
from cometnb._core.protocols import OnEvent
from cometnb._storage.batches import BatchStore, ItemState, State
from cometnb._storage.folder import History

__all__ = ["batch", "may_be_billed", "run_batch"]

POLL_S = 0.2
CANCEL_GRACE_S = 5.0
_LIMITED = ("HTTP 429", RATE_LIMIT_REASON)


def batch(
    items: object,
    *,
    name: str,
    concurrency: int | None = None,
    retry_billed: bool = False,
    client: Client | None = None,
    progress: bool = True,
    **defaults: Any,
) -> Batch:
    """Run ``items`` as the resumable batch ``name``; returns its :class:`Batch`.

    ``items``: prompts, dicts or ``ImageRequest`` s, a pandas DataFrame, or a ``.csv`` /
    ``.jsonl`` path (a ``prompt`` column; ``id`` names items; API-field columns go into the
    request, other columns become ``column=value`` tags). ``defaults`` (``model=``, ``size=``,
    ``quality=``, ``tags=`` …) fill what an item does not set. ``concurrency`` defaults to
    ``%config CometImg.concurrency``.

    Example::

        >>> b = cometnb.batch("catalogue.csv", name="shop", model="gpt-image-2")  # doctest: +SKIP
        >>> b.failed, b.uncertain  # doctest: +SKIP
        ([], [])
    """
    return run_batch(
        items,
        name=name,
        concurrency=concurrency,
        retry_billed=retry_billed,
        client=client,
        progress=progress,
        check=session_check,
        defaults=defaults,
    )


def run_batch(
    items: object,
    *,
    name: str,
    check: BudgetCheck,
    defaults: dict[str, Any],
    concurrency: int | None = None,
    retry_billed: bool = False,
    client: Client | None = None,
    progress: bool = True,
) -> Batch:
    """:func:`batch`, with the budget check given: ``check`` gets the requests about to be
    sent and raises :class:`~cometnb._core.budget.BudgetError` or returns the run's guard
    (``%%cometimg --batch`` passes one that also applies the cell's ``--budget``)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(
            "a batch needs a name (name='catalogue'): the name is what lets a later call resume it",
            field="name",
        )
    loaded = load_items(items, defaults)
    own = client is None
    runner = client if client is not None else Client()
    try:
        history = _history_of(runner)
        store = BatchStore(history.path)
        states, interrupted = store.begin(name, [item.key for item in loaded])
        settle_in_flight(name, [*interrupted, *cancelled_in_flight(states)], history, store)
        states = store.states(name)
        todo = [item for item in loaded if _to_send(states.get(item.key), retry_billed)]
        resent = [item.key for item in todo if in_flight_before(states.get(item.key))]
        # What is about to be sent, against the budgets, before the first request.
        guard = check([item.request for item in todo]) if todo else None
        job = _BatchJob(runner, name, todo, store, _limit(concurrency), guard)
        job.history = history
        sending = {item.key for item in todo}
        left = [s for k, s in states.items() if k not in sending and s.state != "done"]
        job.uncertain_before = sum(1 for s in left if s.state == "uncertain")
        job.failed_before = len(left) - job.uncertain_before
        _run(job, len(loaded) - len(todo), len(loaded), name if progress else None)
        note = stopped_note(guard, len(loaded))
        if note is not None and progress:
            print(note)
        return Batch(name, loaded, history, store, resent=resent, notes=[note] if note else [])
    finally:
        if own:
            runner.close()


def _history_of(client: Client) -> History:
    history = client._writable_history()
    if not isinstance(history, History):
        raise ValidationError(
            "a batch keeps its progress in the history folder, so it needs a client with a "
            "history (not Client(history=False))",
            field="client",
        )
    return history


def _limit(concurrency: int | None) -> int:
    return max(1, int(concurrency or _settings.active().concurrency))


def _to_send(state: ItemState | None, retry_billed: bool) -> bool:
    if state is None or state.state in ("pending", "failed"):
        return True
    return state.state == "uncertain" and retry_billed


class _BatchJob:
    """The coroutine side: one task per item, bounded by the concurrency limit."""

    def __init__(
        self,
        client: Client,
        name: str,
        todo: list[BatchItem],
        store: BatchStore,
        limit: int,
        guard: SpendGuard | None = None,
    ) -> None:
        self.client, self.name, self.todo, self.store = client, name, todo, store
        self.limit, self.guard = limit, guard
        self.spent = 0.0  # USD this run's requests cost (estimates where billing is uncertain)
        self.history: History | None = None  # where failed items' records are looked up
        self.done = self.failed = self.uncertain = 0
        # Failed / uncertain in earlier runs, not sent again now.
        self.failed_before = self.uncertain_before = 0
        self.limited_until = 0.0  # monotonic time the latest rate-limit wait ends
        self.started, self.finished = threading.Event(), threading.Event()

    async def run(self) -> None:
        self.started.set()
        try:
            async with self.client._async_twin() as twin:
                limit = AdaptiveLimit(self.limit)
                outcomes = await asyncio.gather(
                    *(self._one(twin, limit, item) for item in self.todo), return_exceptions=True
                )
        finally:  # after every item's cancellation was marked (the interrupt waits for it)
            self.finished.set()
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                raise outcome  # a bug or a broken disk, not a failed request

    async def _one(self, twin: AsyncClient, limit: AdaptiveLimit, item: BatchItem) -> None:
        origin = ORIGIN.format(name=self.name, key=item.key)
        tags = (*item.tags, f"batch:{self.name}")
        async with limit.slot() as slot:
            refused = self.guard.before_send(item.request) if self.guard else None
            if refused is not None:
                return  # not sent: the item stays pending for a later run with more budget
            on_event, in_flight = self._marker(item, slot)
            try:
                gen = await self._send(twin, item, on_event, tags, origin)
            except (asyncio.CancelledError, CancelledError):
                if in_flight():  # its POST had left: the answer may come, and be billed
                    self.store.mark(self.name, item.key, "uncertain", error=CANCELLED_IN_FLIGHT)
                else:
                    self.store.mark(self.name, item.key, "pending")
                raise
            except CometError as error:
                state: State = "uncertain" if may_be_billed(error) else "failed"
                self.store.mark(
                    self.name, item.key, state, record_id=error.record_id, error=error.message
                )
                self.uncertain += state == "uncertain"
                self.failed += state == "failed"
                return
        self.store.mark(self.name, item.key, "done", record_id=gen.record_id)
        self.done += 1

    async def _send(
        self,
        twin: AsyncClient,
        item: BatchItem,
        on_event: OnEvent,
        tags: tuple[str, ...],
        origin: str,
    ) -> Generation:
        """One item's request, admitted by the run's guard (not checked again per request);
        its cost is added to :attr:`spent` and settled with the guard however it ends."""
        cost: Cost | None = None
        try:
            with admitted():
                gen = await twin.run(item.request, on_event=on_event, tags=tags, origin=origin)
            cost = gen.cost
            return gen
        except CometError as error:
            cost = self._failure_cost(error)
            raise
        finally:
            if cost is not None:
                self.spent += cost.usd or 0.0
            if self.guard is not None:
                self.guard.after(item.request, cost)

    def _failure_cost(self, error: CometError) -> Cost | None:
        """What a failed item's record says it cost (an estimate when it may have been billed)."""
        if error.record_id is None:
            return None
        record = self.history.get(error.record_id) if self.history is not None else None
        return record.cost if record is not None else None

    def _marker(self, item: BatchItem, slot: Any) -> tuple[OnEvent, Callable[[], bool]]:
        """The item's event handler, and whether its request is in flight now.

        Called on the loop thread, synchronously, before the POST leaves: ``sending`` is
        committed before a byte of it is sent. A wait after a failure certainly not billed
        puts it back to ``pending``; once an attempt may have been billed it stays in flight.
        """
        now: list[State] = ["pending"]
        billed = [False]

        def on_event(event: ClientEvent) -> None:
            slot.follow(event)
            if event.kind == "sending":  # every attempt: the mark counts it
                self.store.mark(self.name, item.key, "sending")
                now[0] = "sending"
            elif event.kind == "waiting":
                billed[0] = billed[0] or event.may_be_billed
                if now[0] == "sending" and not billed[0]:
                    self.store.mark(self.name, item.key, "pending")
                    now[0] = "pending"
                if event.reason in _LIMITED and event.wait_s:
                    self.limited_until = max(self.limited_until, time.monotonic() + event.wait_s)

        return on_event, lambda: now[0] == "sending"


def _run(job: _BatchJob, already: int, total: int, title: str | None) -> None:
    """Run ``job`` on the loop thread; draw progress here; an interrupt cancels it."""
    bar = _progress_bar(title, already, total)
    future = loop_thread().submit(job.run())
    try:
        while not concurrent.futures.wait((future,), timeout=POLL_S).done:
            _draw(bar, job, already)
        future.result()
    except KeyboardInterrupt:
        future.cancel()  # done at once; the task then marks each item (uncertain or pending)
        with contextlib.suppress(KeyboardInterrupt):
            if job.started.is_set():
                job.finished.wait(CANCEL_GRACE_S)
        raise
    finally:
        _draw(bar, job, already, final=True)
        if bar is not None:
            bar.close()
            uncertain = job.uncertain_before + job.uncertain
            if uncertain:
                print(f"batch {title}: {billed_note(uncertain)}", file=sys.stderr)


def _progress_bar(title: str | None, already: int, total: int) -> Any:
    if title is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=already, desc=f"batch {title}", unit="item", smoothing=0.1)


def _draw(bar: Any, job: _BatchJob, already: int, *, final: bool = False) -> None:
    if bar is None:
        return
    with contextlib.suppress(Exception):  # a broken display must not lose paid results
        finished = already + job.done + job.failed + job.uncertain
        if finished > bar.n:
            bar.update(finished - bar.n)
        postfix: dict[str, object] = {"failed": job.failed_before + job.failed}
        uncertain = job.uncertain_before + job.uncertain
        if uncertain:
            postfix["may be billed"] = uncertain
        if job.spent or job.guard is not None:
            postfix["spend"] = format_usd(job.spent)
        if not final and time.monotonic() < job.limited_until:
            postfix["waiting"] = "on the rate limit"
        bar.set_postfix(postfix, refresh=final)
