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
request when ``CometImg.budget`` cannot cover them (``_client/runner.py``); while the
batch runs, an item the budget stops is not sent and stays pending (``Batch.notes`` says so).
A spent quota or a refused key stops the run the same way: the items not sent stay pending.
One run of a batch name at a time (``_storage/batches.py``): a second is refused at once.

The requests run on the client's private loop thread, at most ``concurrency`` at a time and
paced by the client under the server's rate limit; the calling thread draws the progress bar
(done / failed / rate / ETA / spend, and when it is waiting on the rate limit) and takes
interrupts.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from cometnb._client.batch import (
    CANCELLED_IN_FLIGHT,
    ORIGIN,
    Batch,
    BatchItem,
    BatchItems,
    cancelled_in_flight,
    halts_the_batch,
    in_flight_before,
    load_items,
    may_be_billed,
    settle_in_flight,
)
from cometnb._client.client import AsyncClient, Client
from cometnb._client.retry import RATE_LIMITED_REASON
from cometnb._client.runner import (
    RATE_LIMIT_REASON,
    AdaptiveLimit,
    BudgetCheck,
    run_job,
    session_check,
    stopped_note,
)
from cometnb._core import settings as _settings
from cometnb._core.billing import BillingRisk
from cometnb._core.budget import SpendGuard, admitted
from cometnb._core.errors import (
    CancelledError,
    CometError,
    NotSent,
    ValidationError,
)
from cometnb._core.generations import ClientEvent, Generation
from cometnb._core.prices import Cost
from cometnb._core.protocols import OnEvent
from cometnb._core.secret import Secret
from cometnb._core.validation import check_encodable, check_no_key
from cometnb._storage.batches import BatchHold, BatchStore, ItemState, State, hold_batch
from cometnb._storage.folder import History

__all__ = ["batch", "run_batch"]

_LIMITED = (RATE_LIMITED_REASON, RATE_LIMIT_REASON)


def batch(
    items: BatchItems,
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
    items: BatchItems,
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
    sent and raises :class:`~cometnb._core.errors.BudgetError` or returns the run's guard
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
        _check_names(name, loaded, _settings.resolve_key(runner._api_key))
        history = _history_of(runner)
        with hold_batch(history.path, name) as hold:  # one run of this batch at a time
            return _run_held(
                name, loaded, runner, history, check, concurrency, retry_billed, progress, hold
            )
    finally:
        if own:
            runner.close()


def _check_names(name: str, loaded: list[BatchItem], key: Secret | None) -> None:
    """The batch name and item ids go into tags, origins and the batch state: refuse text the
    history cannot write (a lone surrogate) and the API key, before anything is sent."""
    names = {"name": name, "id": [item.key for item in loaded]}
    check_encodable(names)
    check_no_key(names, key)


def _run_held(
    name: str,
    loaded: list[BatchItem],
    runner: Client,
    history: History,
    check: BudgetCheck,
    concurrency: int | None,
    retry_billed: bool,
    progress: bool,
    hold: BatchHold,
) -> Batch:
    """The run itself, while this process holds the batch: settle what a stopped run left in
    flight, check the budget on what is left to send, send it, and say what stopped it."""
    store = BatchStore(history.path)
    states, interrupted = store.begin(name, [item.key for item in loaded])
    settle_in_flight(name, [*interrupted, *cancelled_in_flight(states)], history, store)
    states = store.states(name)
    todo = [item for item in loaded if _to_send(states.get(item.key), retry_billed)]
    # What is about to be sent, against the budgets, before the first request.
    guard = check([item.request for item in todo]) if todo else None
    job = _BatchJob(runner, name, todo, store, _limit(concurrency), guard, history, states)
    sending = {item.key for item in todo}
    # Failed items are always sent again, so what an earlier run left behind is uncertain.
    job.uncertain_before = sum(
        1 for item in loaded if item.key not in sending and states[item.key].state == "uncertain"
    )
    try:
        run_job(job, len(loaded) - len(todo), len(loaded), name if progress else None)
    except BaseException:
        if job.started.is_set() and not job.finished.is_set():
            hold.release_after(job.finished)  # its tasks are still marking items
        raise
    notes = [n for n in (stopped_note(guard, len(loaded)), job.halt_note()) if n]
    if progress:
        for note in notes:
            print(f"batch {name}: {note}", file=sys.stderr)
    return Batch(name, loaded, history, store, resent=job.resent, notes=notes)


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
        guard: SpendGuard | None,
        history: History,
        before: dict[str, ItemState],
    ) -> None:
        self.client, self.name, self.todo, self.store = client, name, todo, store
        self.limit, self.guard = limit, guard
        self.history = history  # where failed items' records are looked up
        self.before = before  # each item's state when the run began
        self.spent = 0.0  # USD this run's requests cost (estimates where billing is uncertain)
        self.done = self.failed = self.uncertain = 0
        self.uncertain_before = 0  # uncertain after earlier runs, not sent again now
        self.limited_until = 0.0  # monotonic time the latest rate-limit wait ends
        self.started, self.finished = threading.Event(), threading.Event()
        self.resent: list[str] = []  # in flight when a run stopped, sent again (retry_billed)
        # Set by a failure no other item can get past (the quota is spent, the key refused):
        # the items not sent yet stay pending instead of each failing the same way.
        self.halted: CometError | None = None
        self.held_back = 0

    async def run(self) -> None:
        self.started.set()
        try:
            async with self.client._async_twin() as twin:
                limit = AdaptiveLimit(self.limit, many=len(self.todo) > 1)
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
            if self.halted is not None:
                self.held_back += 1
                self._not_sent(item)
                return
            refused = self.guard.before_send(item.request) if self.guard else None
            if refused is not None:
                self._not_sent(item)  # for a later run with more budget
                return
            on_event, in_flight = self._marker(item, slot)
            try:
                gen = await self._send(twin, item, on_event, tags, origin)
            except (asyncio.CancelledError, CancelledError):
                if in_flight():  # its POST had left: the answer may come, and be billed
                    self.store.mark(
                        self.name,
                        item.key,
                        "uncertain",
                        error=CANCELLED_IN_FLIGHT,
                        billing=BillingRisk.SENT_NO_ANSWER,
                    )
                else:
                    self.store.mark(self.name, item.key, "pending")
                raise
            except CometError as error:
                state: State = "uncertain" if may_be_billed(error) else "failed"
                self.store.mark(
                    self.name,
                    item.key,
                    state,
                    record_id=error.record_id,
                    error=error.message,
                    billing=error.billing,
                )
                self.uncertain += state == "uncertain"
                self.failed += state == "failed"
                if self.halted is None and halts_the_batch(error):
                    self.halted = error
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

    def _not_sent(self, item: BatchItem) -> None:
        """An item this run does not send: one that failed before goes back to ``pending``;
        one that may have been billed stays ``uncertain`` (a plain re-run must not send it)."""
        before = self.before.get(item.key)
        if before is not None and before.state == "failed":
            self.store.mark(self.name, item.key, "pending")

    def halt_note(self) -> str | None:
        """``Stopped: …`` when a failure made the run hold back the items not sent yet."""
        if self.halted is None or not self.held_back:
            return None
        items = "item was" if self.held_back == 1 else "items were"
        return (
            f"Stopped early: {self.halted.message} {self.held_back} {items} not sent and "
            "stay pending; run the batch again once this is fixed."
        )

    def _failure_cost(self, error: CometError) -> Cost | None:
        """What a failed item's record says it cost (an estimate when it may have been billed)."""
        if error.record_id is None:
            return None
        record = self.history.get(error.record_id)
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
                try:
                    self.store.mark(self.name, item.key, "sending")
                except Exception as exc:  # unrecorded, a kill now would resend it: hold it back
                    raise NotSent(
                        f"not sent: the batch could not record that {item.key} is being sent "
                        f"({type(exc).__name__}: {exc})",
                        hint="Check the history folder (disk space, another process holding "
                        "batches.sqlite3), then run the batch again.",
                    ) from exc
                was = self.before.get(item.key)
                if in_flight_before(was) and item.key not in self.resent:
                    self.resent.append(item.key)
                now[0] = "sending"
            elif event.kind == "waiting":
                billed[0] = billed[0] or event.may_be_billed
                if now[0] == "sending" and not billed[0]:
                    self.store.mark(self.name, item.key, "pending")
                    now[0] = "pending"
                if event.reason in _LIMITED and event.wait_s:
                    self.limited_until = max(self.limited_until, time.monotonic() + event.wait_s)

        return on_event, lambda: now[0] == "sending"
