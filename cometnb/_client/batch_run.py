"""``cometnb.batch(items, name=...)``: a resumable, named batch run with a progress bar.

Every item is validated before anything is sent. Its state lives in the history folder
(``_storage/batches.py``): it is marked ``sending`` (committed) before its request leaves and
``done`` / ``failed`` / ``uncertain`` once its record is in the history. Calling ``batch`` again
with the same name — after an exception, a kernel restart or ``kill -9`` — sends only items not
yet done, and never one that may have been billed (``uncertain``) unless
``retry_billed=True``. A request that was in flight when a process died is looked up in the
history (its record names the item in ``origin``): found, it counts as done or failed; not
found, its answer never arrived and it is sent again (``Batch.resent_after_interrupt``).

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
import time
from collections.abc import Callable, Sequence
from typing import Any

from cometnb._client.batch import Batch
from cometnb._client.batch_budget import BudgetCheck, session_check, stopped_note
from cometnb._client.batch_items import BatchItem, load_items
from cometnb._client.clients import AsyncClient, Client
from cometnb._client.limiter import AdaptiveLimit
from cometnb._client.loop import loop_thread
from cometnb._client.pacing import RATE_LIMIT_REASON
from cometnb._client.retry import status_safety
from cometnb._core import settings as _settings
from cometnb._core.budget import SpendGuard, admitted
from cometnb._core.cost import Cost, format_usd
from cometnb._core.errors import (
    APIError,
    CancelledError,
    CometError,
    ResponseError,
    ValidationError,
)
from cometnb._core.models import ClientEvent, Generation
from cometnb._storage.batches import BatchStore, ItemState, State
from cometnb._storage.folder import History

__all__ = ["batch", "may_be_billed", "run_batch"]

POLL_S = 0.2
CANCEL_GRACE_S = 5.0
ORIGIN = "batch:{name}/{key}"
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
        _, interrupted = store.begin(name, [item.key for item in loaded])
        resent = _settle_interrupted(name, interrupted, history, store)
        states = store.states(name)
        todo = [item for item in loaded if _to_send(states.get(item.key), retry_billed)]
        # What is about to be sent, against the budgets, before the first request.
        guard = check([item.request for item in todo]) if todo else None
        sending = {item.key for item in todo}
        failed = sum(1 for k, s in states.items() if k not in sending and s.state != "done")
        limit = max(1, int(concurrency or _settings.active().concurrency))
        job = _BatchJob(runner, name, todo, store, limit, guard)
        job.failed_before, job.history = failed, history
        _run(job, len(loaded) - len(todo), len(loaded), name if progress else None)
        note = stopped_note(guard, len(loaded))
        if note is not None and progress:
            print(note)
        return Batch(name, loaded, history, store, resent=resent, notes=[note] if note else [])
    finally:
        if own:
            runner.close()


def may_be_billed(error: CometError) -> bool:
    """True when the failed request may still have been billed (read timeout, a 5xx after
    sending, an unusable answer): such an item is not sent again without ``retry_billed``."""
    flag = getattr(error, "may_be_billed", None)
    if isinstance(flag, bool):
        return flag
    if isinstance(error, ResponseError):
        return True
    if isinstance(error, APIError):
        if error.status is not None:
            return status_safety(error.status) == "billed"
        return "read timeout" in error.message or "dropped after the request" in error.message
    return False


def _history_of(client: Client) -> History:
    history = client._writable_history()
    if not isinstance(history, History):
        raise ValidationError(
            "a batch keeps its progress in the history folder, so it needs a client with a "
            "history (not Client(history=False))",
            field="client",
        )
    return history


def _to_send(state: ItemState | None, retry_billed: bool) -> bool:
    if state is None or state.state in ("pending", "failed"):
        return True
    return state.state == "uncertain" and retry_billed


def _settle_interrupted(
    name: str, interrupted: Sequence[ItemState], history: History, store: BatchStore
) -> list[str]:
    """Items a dead run left ``sending``: done or failed if their record made it to the
    history, else sent again (their answer never arrived). Returns the keys sent again."""
    if not interrupted:
        return []
    origins = {ORIGIN.format(name=name, key=s.key): s.key for s in interrupted}
    found = {origins[r.origin]: r for r in history if r.origin in origins}
    resent = []
    for state in interrupted:
        record = found.get(state.key)
        if record is None:
            store.mark(name, state.key, "pending")
            resent.append(state.key)
        elif record.status == "ok":
            store.mark(name, state.key, "done", record_id=record.id)
        else:
            store.mark(name, state.key, "failed", record_id=record.id, error=_error_text(record))
    return resent


def _error_text(record: Any) -> str:
    info = record.error_info or {}
    return str(info.get("message") or record.status)


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
        self.done = self.failed = 0
        self.failed_before = 0  # failed or uncertain in earlier runs, not sent again now
        self.limited_until = 0.0  # monotonic time the latest rate-limit wait ends

    async def run(self) -> None:
        async with self.client._async_twin() as twin:
            limit = AdaptiveLimit(self.limit)
            outcomes = await asyncio.gather(
                *(self._one(twin, limit, item) for item in self.todo), return_exceptions=True
            )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, asyncio.CancelledError
            ):
                raise outcome  # a bug or a broken disk, not a failed request

    async def _one(self, twin: AsyncClient, limit: AdaptiveLimit, item: BatchItem) -> None:
        origin = ORIGIN.format(name=self.name, key=item.key)
        tags = (*item.tags, f"batch:{self.name}")
        async with limit.slot() as slot:

            def on_event(event: ClientEvent) -> None:
                slot.follow(event)
                if event.kind == "waiting" and event.reason in _LIMITED and event.wait_s:
                    self.limited_until = max(self.limited_until, time.monotonic() + event.wait_s)

            refused = self.guard.before_send(item.request) if self.guard else None
            if refused is not None:
                return  # not sent: the item stays pending for a later run with more budget
            self.store.mark(self.name, item.key, "sending")
            try:
                gen = await self._send(twin, item, on_event, tags, origin)
            except asyncio.CancelledError:
                self.store.mark(self.name, item.key, "pending")  # its answer never arrived
                raise
            except CancelledError:
                self.store.mark(self.name, item.key, "pending")
                raise
            except CometError as error:
                state: State = "uncertain" if may_be_billed(error) else "failed"
                self.store.mark(
                    self.name, item.key, state, record_id=error.record_id, error=error.message
                )
                self.failed += 1
                return
        self.store.mark(self.name, item.key, "done", record_id=gen.record_id)
        self.done += 1

    async def _send(
        self,
        twin: AsyncClient,
        item: BatchItem,
        on_event: Callable[[ClientEvent], None],
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


def _run(job: _BatchJob, already: int, total: int, title: str | None) -> None:
    """Run ``job`` on the loop thread; draw progress here; an interrupt cancels it."""
    bar = _progress_bar(title, already, total)
    future = loop_thread().submit(job.run())
    try:
        while not concurrent.futures.wait((future,), timeout=POLL_S).done:
            _draw(bar, job, already)
        future.result()
    except KeyboardInterrupt:
        future.cancel()
        with contextlib.suppress(KeyboardInterrupt, concurrent.futures.CancelledError):
            concurrent.futures.wait((future,), timeout=CANCEL_GRACE_S)
        raise
    finally:
        _draw(bar, job, already, final=True)
        if bar is not None:
            bar.close()


def _progress_bar(title: str | None, already: int, total: int) -> Any:
    if title is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=already, desc=f"batch {title}", unit="item", smoothing=0.1)


def _draw(bar: Any, job: _BatchJob, already: int, *, final: bool = False) -> None:
    if bar is None:
        return
    with contextlib.suppress(Exception):  # a broken display must not lose paid results
        finished = already + job.done + job.failed
        if finished > bar.n:
            bar.update(finished - bar.n)
        postfix: dict[str, object] = {"failed": job.failed_before + job.failed}
        if job.spent or job.guard is not None:
            postfix["spend"] = format_usd(job.spent)
        if not final and time.monotonic() < job.limited_until:
            postfix["waiting"] = "on the rate limit"
        bar.set_postfix(postfix, refresh=final)
