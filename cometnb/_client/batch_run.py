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

The requests run through the runner (``_client/runner.py``: at most ``concurrency`` at a time,
admitted by the budget, paced by the client under the server's rate limit) on the client's
private loop thread; this module is the batch's hooks (its state, its spend, the early stop).
The calling thread draws the progress bar (done / failed / rate / ETA / spend, and when it is
waiting on the rate limit) and takes interrupts.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from cometnb._client.batch import (
    CANCELLED_IN_FLIGHT,
    ORIGIN,
    Batch,
    BatchItem,
    BatchItems,
    billed_note,
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
    BudgetCheck,
    Run,
    RunHooks,
    drive,
    session_check,
    stopped_note,
)
from cometnb._core import settings as _settings
from cometnb._core.billing import BillingRisk
from cometnb._core.budget import SpendGuard
from cometnb._core.errors import BudgetError, CometError, NotSent, ValidationError
from cometnb._core.generations import ClientEvent, Generation
from cometnb._core.prices import format_spend
from cometnb._core.protocols import OnEvent
from cometnb._core.secret import Secret
from cometnb._core.validation import check_encodable, check_no_key, check_stored
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
    """The batch name and item ids go into tags, origins and the batch state, and each item's
    tags into its record: refuse text the history cannot write (a lone surrogate) and the API
    key, before anything is sent (the runner's requests are not checked again)."""
    names = {"name": name, "id": [item.key for item in loaded]}
    check_encodable(names)
    check_no_key(names, key)
    for item in loaded:
        check_stored(_tags(name, item), _origin(name, item), key)


def _tags(name: str, item: BatchItem) -> tuple[str, ...]:
    return (*item.tags, f"batch:{name}")


def _origin(name: str, item: BatchItem) -> str:
    return ORIGIN.format(name=name, key=item.key)


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
    job = _BatchJob(name, store, guard, states)
    sending = {item.key for item in todo}
    # Failed items are always sent again, so what an earlier run left behind is uncertain.
    job.uncertain_before = sum(
        1 for item in loaded if item.key not in sending and states[item.key].state == "uncertain"
    )
    run = Run(todo, job, _limit(concurrency), guard)
    try:
        _drive(runner, run, job, len(loaded) - len(todo), len(loaded), name if progress else None)
    except BaseException:
        if run.started.is_set() and not run.settled.is_set():
            hold.release_after(run.settled)  # its tasks are still marking items
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


async def _in_client(client: Client, job: _BatchJob, run: Run[BatchItem]) -> None:
    """The run, on ``client``'s engine (its pool and its pacer)."""
    job.client = client._engine_on_loop()
    await run.run()


def _drive(
    client: Client, run: Run[BatchItem], job: _BatchJob, already: int, total: int, title: str | None
) -> None:
    """Run the batch while this thread draws its progress bar (``title``: none when ``None``)."""
    bar = _progress_bar(title, already, total)
    try:
        drive(run, lambda: _draw(bar, job, already), coro=_in_client(client, job, run))
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
        postfix: dict[str, object] = {"failed": job.failed}
        uncertain = job.uncertain_before + job.uncertain
        if uncertain:
            postfix["may be billed"] = uncertain
        if job.spent or job.guard is not None:
            postfix["spend"] = format_spend(job.spent)
        if not final and time.monotonic() < job.limited_until:
            postfix["waiting"] = "on the rate limit"
        bar.set_postfix(postfix, refresh=final)


class _BatchJob(RunHooks[BatchItem]):
    """A batch's side of the runner: each item's state in the batch table (``sending`` exactly
    while its request is on the wire), the run's spend, and the early stop."""

    def __init__(
        self,
        name: str,
        store: BatchStore,
        guard: SpendGuard | None,
        before: dict[str, ItemState],
    ) -> None:
        self.name, self.store, self.guard = name, store, guard
        self.client: AsyncClient | None = None  # set when the run starts (_in_client)
        self.before = before  # each item's state when the run began
        self.spent = 0.0  # USD this run's requests cost (estimates where billing is uncertain)
        self.done = self.failed = self.uncertain = 0
        self.uncertain_before = 0  # uncertain after earlier runs, not sent again now
        self.limited_until = 0.0  # monotonic time the latest rate-limit wait ends
        self.resent: list[str] = []  # in flight when a run stopped, sent again (retry_billed)
        # Set by a failure no other item can get past (the quota is spent, the key refused):
        # the items not sent yet stay pending instead of each failing the same way.
        self.halted: CometError | None = None
        self.held_back = 0
        # Per item on the wire: "sending" from its POST until a wait certainly not billed.
        self._now: dict[str, State] = {}
        self._billed: set[str] = set()  # an attempt of it may have been billed

    def request(self, item: BatchItem) -> Any:
        return item.request

    def hold(self, item: BatchItem) -> bool:
        if self.halted is None:
            return False
        self.held_back += 1
        self._not_sent(item)
        return True

    def refused(self, item: BatchItem, error: BudgetError) -> None:
        self._not_sent(item)  # for a later run with more budget

    async def send(self, item: BatchItem, on_event: OnEvent, patient: bool) -> Generation:
        assert self.client is not None
        tags, origin = _tags(self.name, item), _origin(self.name, item)
        return await self.client.send_checked(
            item.request, on_event=on_event, tags=tags, origin=origin, patient=patient
        )

    def event(self, item: BatchItem, event: ClientEvent) -> None:
        """Called on the loop thread, synchronously, before the POST leaves: ``sending`` is
        committed before a byte of it is sent. A wait after a failure certainly not billed
        puts it back to ``pending``; once an attempt may have been billed it stays in flight.
        """
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
            self._now[item.key] = "sending"
        elif event.kind == "waiting":
            if event.may_be_billed:
                self._billed.add(item.key)
            sending = self._now.get(item.key) == "sending"
            if sending and item.key not in self._billed:
                self.store.mark(self.name, item.key, "pending")
                self._now[item.key] = "pending"
            if event.reason in _LIMITED and event.wait_s:
                self.limited_until = max(self.limited_until, time.monotonic() + event.wait_s)

    def cancelled(self, item: BatchItem, sent: bool) -> None:
        if self._now.get(item.key) == "sending":  # its POST had left: it may be billed
            self.store.mark(
                self.name,
                item.key,
                "uncertain",
                error=CANCELLED_IN_FLIGHT,
                billing=BillingRisk.SENT_NO_ANSWER,
            )
        else:
            self.store.mark(self.name, item.key, "pending")

    def finished(self, item: BatchItem, gen: Generation) -> None:
        cost = gen.cost
        self.spent += cost.usd or 0.0
        error = gen.error
        if error is None:
            self.store.mark(self.name, item.key, "done", record_id=gen.record_id)
            self.done += 1
            return
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
