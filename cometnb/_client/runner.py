"""Running many requests: one runner (:class:`Run`) that ``generate_many`` (and a lone request,
a run of one), grids and batches call with their hooks (:class:`RunHooks`: display, batch
state, progress). It owns the concurrency limit (:class:`AdaptiveLimit`), budget admission and
settlement (the run's :class:`~cometnb._core.budget.SpendGuard`), the rate-limit patience of a
run of several, and Ctrl-C (:func:`drive`: the one Ctrl-C-aware progress loop). Pacing under the
account's rate limit (:class:`Pacer`: a request waits its turn locally) is per client. Also
here: the budget check a run starts with (:func:`open_gate`), and grids.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from cometnb._client.loop import Escaped, carrying_interrupts, loop_thread
from cometnb._core.budget import SpendGuard, guard_requests, session_budget
from cometnb._core.errors import BudgetError, CancelledError, CometError, NotSent, ValidationError
from cometnb._core.generations import ClientEvent, Generation, Grid, GridCell, ImageRequest
from cometnb._core.prices import format_spend
from cometnb._core.progress import RATE_LIMIT_REASON, CellProgress, describe_event
from cometnb._core.protocols import AsyncRunner, OnEvent
from cometnb._core.secret import Secret
from cometnb._core.text import clip
from cometnb._core.validation import check_stored

__all__ = [
    "AXIS_FIELDS",
    "RATE_LIMIT_REASON",
    "AdaptiveLimit",
    "BudgetCheck",
    "Pacer",
    "RateLimits",
    "Run",
    "RunHooks",
    "Slot",
    "Ticket",
    "Turn",
    "cell_label",
    "drive",
    "expand_grid",
    "not_sent",
    "open_gate",
    "parse_duration",
    "run_grid",
    "session_check",
    "stopped_note",
    "validate_grid",
]

# --- limiter -----------------------------------------------------------------------------------
# The concurrency limit: at most ``limit`` requests in flight, and slots given back early.


class AdaptiveLimit:
    """At most :attr:`limit` holders at a time, each holding a :meth:`slot`.

    Example::

        >>> limit = AdaptiveLimit(4)
        >>> limit.limit, limit.active
        (4, 0)
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self._active = 0
        self._finishing = 0  # released early, not yet exited (their results are being stored)
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def active(self) -> int:
        return self._active

    @property
    def finishing(self) -> int:
        return self._finishing

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """One place in the limit, held for the ``async with`` block; it may be given back
        before the block ends (:meth:`Slot.release`)."""
        await self.acquire()
        held = Slot(self)
        try:
            yield held
        finally:
            held.close()

    async def acquire(self) -> None:
        """Wait until fewer than :attr:`limit` are in flight (and fewer than twice that
        finishing), then take a place."""
        # Single-threaded asyncio: no lock needed, only futures to park waiters on.
        while self._active >= self.limit or self._finishing >= 2 * self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self._active += 1

    def release(self, *, finishing: bool = False) -> None:
        """Give a place back (synchronous on purpose: a cancelled task must still do it).

        ``finishing=True``: the holder goes on with local work and calls :meth:`finished`
        when done; until then it counts towards the finishing cap.
        """
        self._active -= 1
        self._finishing += finishing
        self._wake()

    def finished(self) -> None:
        """A holder that released early (``finishing=True``) is done."""
        self._finishing -= 1
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)  # every waiter re-checks the limit


class Slot:
    """A place taken in an :class:`AdaptiveLimit` (by :meth:`AdaptiveLimit.slot`);
    :meth:`release` may come before the block ends.

    Example::

        >>> async def one(limit: AdaptiveLimit) -> None:  # doctest: +SKIP
        ...     async with limit.slot() as slot:
        ...         body = await read_response()
        ...         slot.release()        # the next request may start now
        ...         await store(body)     # … while this one is stored
    """

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit
        self._held = True
        self._finishing = False  # released early; counted as finishing until the exit

    @property
    def held(self) -> bool:
        return self._held

    def follow(self, event: ClientEvent) -> None:
        """Free the slot once the holder's answer is read: the server is done with it, so the
        next request may go out while this one is stored. (429s are the pacer's business.)"""
        if event.kind == "received":
            self.release()

    def release(self) -> None:
        """Give the place back now (the holder is finishing until it exits); once only."""
        if self._held:
            self._held, self._finishing = False, True
            self._limit.release(finishing=True)

    def close(self) -> None:
        """The block ended: give back the place, or end the finishing a release began."""
        if self._held:
            self._held = False
            self._limit.release()
        elif self._finishing:
            self._finishing = False
            self._limit.finished()


# --- pacing ------------------------------------------------------------------------------------
# Pacing: send requests at the rate the server's limit allows, found by itself.

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
# Waits after which a request goes anyway when the clock did not move meanwhile (a test's
# instant sleep): a real wait always lets time pass, so it is never cut short.
MAX_STALLS = 8


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset notation (``"1s"``, ``"6m0s"``, ``"250ms"``, ``"1h2m3.5s"``) or plain
    seconds (``"1.5"``) as seconds; ``None`` when absent or unreadable.

    Example::

        >>> parse_duration("6m0s"), parse_duration("250ms"), parse_duration("2")
        (360.0, 0.25, 2.0)
    """
    if text is None:
        return None
    text = text.strip().lower()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(amount) * scale[unit] for amount, unit in parts)


@dataclass(frozen=True)
class RateLimits:
    """What one answer's rate-limit headers said (``None`` for a header that was absent)."""

    limit: int | None = None  # requests per minute
    remaining: int | None = None  # requests that may be sent now
    reset_s: float | None = None  # until the allowance is full again

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits | None:
        """The ``x-ratelimit-*-requests`` headers, or ``None`` when the server sends none."""
        prefix = "x-ratelimit-"
        lower = {k.lower(): v for k, v in headers.items() if k.lower().startswith(prefix)}
        if not lower:  # most servers send none: nothing to read
            return None
        limit = _as_int(lower.get("x-ratelimit-limit-requests"))
        remaining = _as_int(lower.get("x-ratelimit-remaining-requests"))
        reset = parse_duration(lower.get("x-ratelimit-reset-requests"))
        if limit is None and remaining is None and reset is None:
            return None
        return cls(limit, remaining, reset)


def _as_int(text: str | None) -> int | None:
    try:
        return None if text is None else max(0, int(float(text.strip())))
    except ValueError:
        return None


@dataclass
class Ticket:
    """One send the pacer allowed: when it went, and (once read) the answer's headers."""

    sent_at: float
    limits: RateLimits | None = None
    free: bool = False  # the one send a cut lets through at once (its 429 is expected)


@dataclass(frozen=True)
class Turn:
    """The answer of :meth:`Pacer.next_send`: ``wait_s`` = 0 means "send now" (``ticket`` is
    then the send's ticket); otherwise wait that long and ask again."""

    wait_s: float
    ticket: Ticket | None = None


class Pacer:
    """When the next request may be sent, from the server's rate-limit headers or its 429s.

    Thread-safe (the sync client and its asyncio twin may share one). ``floor`` is the lowest
    rate in requests a second (default one a minute); ``margin`` keeps a header-given rate
    just under the limit; ``window`` is how many seconds of sends measure the accepted rate.
    """

    def __init__(
        self,
        *,
        floor: float = 1.0 / 60.0,
        decrease: float = 0.85,
        increase: float = 0.03,
        margin: float = 0.98,
        window: float = 2.0,
        relax_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.floor, self.decrease, self.increase = floor, decrease, increase
        self.margin, self.window, self.relax_s = margin, window, relax_s
        self._clock = clock
        self._lock = threading.Lock()
        self.rate: float | None = None  # requests a second; None = not paced
        self.ceiling: float | None = None  # the rate the headers give
        self._tokens = 0.0
        self._capacity = 1.0
        self._at = 0.0  # last refill
        self._cut_at = -math.inf  # when the rate was last cut
        self._limited_at = -math.inf  # the last rate-limit 429
        self._sent: deque[float] = deque()
        self._refused: deque[float] = deque()
        self._waiting = 0
        self._free = False  # a cut lets one request go at once (the retry of a lone request)
        self._synced_at = -math.inf  # send time of the answer whose headers were last followed
        self.last: Ticket | None = None  # the latest ticket handed out (doctests, probes)
        self._storm_since: float | None = None  # the first 429 since the last other answer

    # --- reading the state --------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """How many requests are waiting for their turn right now."""
        return self._waiting

    def storm_s(self) -> float:
        """How long the server has answered only rate-limit 429s (0 when it has not)."""
        with self._lock:
            since = self._storm_since
            return 0.0 if since is None else max(0.0, self._clock() - since)

    def accepted_rate(self) -> float:
        """Requests a second the server accepted over the last :attr:`window` seconds."""
        with self._lock:
            return self._accepted(self._clock())

    # --- the client's calls -------------------------------------------------------------

    def now(self) -> float:
        """The pacer's clock (the caller checks a wait really let time pass)."""
        return self._clock()

    def next_send(self, *, waited: bool = False, force: bool = False) -> Turn:
        """Send now (taking a turn) or wait ``Turn.wait_s`` and ask again.

        ``waited``: this request already waited for a turn (it is counted in :attr:`waiting`
        until it gets one). ``force``: send now anyway (the caller's sleeps do not let time
        pass, see :data:`MAX_STALLS`).
        """
        with self._lock:
            now = self._clock()
            self._relax(now)
            free = self._free
            if free:
                self._free = False
            elif self.rate is not None:
                self._refill(now)
                if self._tokens < 1.0 and not force:
                    self._waiting += not waited
                    return Turn((1.0 - self._tokens) / self.rate)
                self._tokens -= 1.0  # forced: the debt delays the next ones
            self._waiting -= waited and self._waiting > 0
            ticket = Ticket(now, free=free)
            self._sent.append(now)
            self.last = ticket
            return Turn(0.0, ticket)

    def give_up(self, waited: bool) -> None:
        """A request that waited for a turn was cancelled before getting one."""
        with self._lock:
            self._waiting -= waited and self._waiting > 0

    def settle(
        self,
        ticket: Ticket | None,
        *,
        limited: bool,
        retry_after: float | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        """Learn from the answer to ``ticket``: a rate-limit 429 (``limited``) or anything else.

        ``limits`` are the answer's rate-limit headers (also read from ``ticket.limits``).
        """
        if ticket is None:
            return
        limits = limits or ticket.limits
        with self._lock:
            now = self._clock()
            if limits is not None:
                self._follow_headers(ticket, limits, now)
            if not limited:
                self._storm_since = None
            elif self._storm_since is None:
                self._storm_since = ticket.sent_at
            if limited:
                self._refused.append(ticket.sent_at)
                self._limited_at = now
                explained = limits is not None and limits.remaining == 0
                if not explained and retry_after != 0:
                    again = ticket.sent_at > self._cut_at and not ticket.free
                    self._cut(now, retry_after, again=again)

    # --- the policy -------------------------------------------------------------------------

    def _cut(self, now: float, retry_after: float | None, *, again: bool) -> None:
        """Multiplicative decrease, from what the server has been accepting.

        ``again``: the refused request was sent after the last cut, so the cut rate is still
        too high. Otherwise (sent before it) the refusal only corrects the estimate the last
        cut made: requests in flight then were counted as accepted.
        """
        if self.rate is not None:
            self._refill(now)
        # A server asking to wait N s takes at least one request per N s.
        hinted = 1.0 / retry_after if retry_after else 0.0
        measured = max(self._accepted(now) * self.decrease, hinted)
        if again or self.rate is None:
            current = self.rate if self.rate is not None else math.inf
            self.rate = min(current * self.decrease, measured)
            self._tokens = 0.0
            self._free = True  # the next may go at once (a lone request's retry); others wait
            self._cut_at = now
        else:
            self.rate = min(self.rate, measured)
        self.rate = max(self.floor, self.rate)
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self._at = now

    def _follow_headers(self, ticket: Ticket, limits: RateLimits, now: float) -> None:
        if limits.limit:
            self.ceiling = limits.limit / 60.0 * self.margin
            if self.rate is None or self.rate > self.ceiling:
                self.rate = self.ceiling
                self._at = now
        if limits.remaining is None or self.rate is None or ticket.sent_at < self._synced_at:
            return  # answers come back out of order: an older count is stale
        self._synced_at = ticket.sent_at
        # The server counted `remaining` when this request arrived; sends since have taken
        # some, and the refill since has added some.
        since = sum(1 for t in self._sent if t > ticket.sent_at)
        available = limits.remaining - since + self.rate * max(0.0, now - ticket.sent_at)
        self._capacity = max(self._capacity, float(limits.remaining))
        self._tokens = min(available, self._capacity)
        self._at = now

    def _refill(self, now: float) -> None:
        assert self.rate is not None
        elapsed = max(0.0, now - self._at)
        self._at = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self.rate)
        if self.ceiling is None or self.rate < self.ceiling:
            # Grow only while sending: an idle gap is not evidence the server takes more.
            grown = self.rate * (1.0 + self.increase) ** min(elapsed, 1.0)
            self.rate = grown if self.ceiling is None else min(grown, self.ceiling)

    def _relax(self, now: float) -> None:
        """After ``relax_s`` without a 429 and with no header-given limit, stop pacing."""
        if self.rate is not None and self.ceiling is None and now - self._limited_at > self.relax_s:
            self.rate = None

    def _accepted(self, now: float) -> float:
        start = now - self.window
        for times in (self._sent, self._refused):
            while times and times[0] < start - self.window:
                times.popleft()  # keep two windows: a late answer still finds its send
        sent = sum(1 for t in self._sent if t > start)
        refused = sum(1 for t in self._refused if t > start)
        first = self._sent[0] if self._sent else now
        span = max(1.0, min(self.window, now - first))
        return max(0, sent - refused) / span


# --- spend_gate --------------------------------------------------------------------------------
# The session budget (``CometImg.budget``) in the clients: ``Client.generate``, ``AsyncClient``,
# ``generate_many`` and ``History.rerun`` refuse, before sending, what the budget cannot cover —
# the same check and message as the magic and the panel.


def open_gate(bodies: Sequence[Any]) -> SpendGuard | None:
    """Check every body's (or ImageRequest's) estimate against the session budget first.

    Returns the guard that admits each request in turn (:class:`Run`), or ``None`` when no
    budget is set. Raises :class:`BudgetError`.
    """
    cap = session_budget()
    if cap is None:
        return None
    return guard_requests(
        bodies, session_budget=cap, cell_budget=None, confirm_above=None, yes=True
    )


def not_sent(body: dict[str, Any], error: BudgetError) -> Generation:
    """The result of a request the budget stopped: nothing sent, nothing recorded, $0."""
    return Generation(request=body, error=error, status="cancelled")


# --- batch_budget ------------------------------------------------------------------------------
# The budget in a batch (``cometnb.batch`` and ``%%cometimg --batch``).

# Given the requests about to be sent: the run's guard (None: no cap), or a BudgetError raised.
BudgetCheck = Callable[[Sequence[Any]], SpendGuard | None]


# For a Python caller: no cell, so no --budget to raise (the magic's hint names it).
PYTHON_HINT = (
    "Raise it with %config CometImg.budget = USD, or run fewer items (a later call with the "
    "same name sends the rest)."
)


def session_check(requests: Sequence[Any]) -> SpendGuard | None:
    """What ``cometnb.batch`` checks: the session budget, as ``generate_many`` does
    (``CometImg.confirm_above`` is the magic's: a Python call is its own confirmation), and
    the account's balance (``_client/lookups.py``)."""
    from cometnb._client.lookups import check_uncapped

    try:
        check_uncapped(requests)
        return open_gate(requests)
    except BudgetError as refused:
        if refused.left_usd is not None:  # over what is left (not an unknown price)
            refused.hint = PYTHON_HINT
        raise


def stopped_note(guard: SpendGuard | None, total: int) -> str | None:
    """``Budget reached: 3 of 100 items were not sent…`` when the guard stopped some."""
    if guard is None or not guard.skipped:
        return None
    left = guard.left() or 0.0
    return (
        f"Budget reached: {guard.skipped} of {total} items were not sent "
        f"({format_spend(left, exact_below_cent=True)} left). {guard.raise_hint}, then run the "
        "batch again with the same name to send them."
    )


# --- the run -----------------------------------------------------------------------------------
# One runner for many requests: ``generate_many`` (and a lone request, a run of one), a grid and
# a batch are its callers, each with its hooks. The runner owns the concurrency limit, budget
# admission and settlement, the rate-limit patience of a run of several, and Ctrl-C (drive).

T = TypeVar("T")

log = logging.getLogger("cometnb")

# How long the waiting thread sleeps between checks: short enough for a prompt interrupt.
POLL_S = 0.1
# After an interrupt, how long to wait for the tasks to record themselves as cancelled (each
# batch item marks itself uncertain or pending, each grid cell its record).
CANCEL_GRACE_S = 5.0


class RunHooks(Generic[T]):
    """A caller's side of a :class:`Run`: :meth:`send` is required, the rest do nothing unless
    overridden. Every hook runs on the loop thread."""

    def request(self, item: T) -> Any:
        """What the budget estimates for ``item`` (an ImageRequest or a request body)."""
        return item

    def hold(self, item: T) -> bool:
        """True: leave ``item`` unsent (a batch stopped by a spent quota holds the rest)."""
        return False

    def refused(self, item: T, error: BudgetError) -> None:
        """The budget stopped ``item`` when its turn came: nothing was sent."""

    def started(self, item: T) -> None:
        """``item`` was admitted and its request is about to be sent."""

    def event(self, item: T, event: ClientEvent) -> None:
        """The client's events for ``item``, in order; on ``"sending"`` it may raise
        :class:`~cometnb._core.errors.NotSent` to hold the request back."""

    async def send(self, item: T, on_event: OnEvent, patient: bool) -> Generation:
        """Send ``item`` and return its outcome (a failure is a Generation, not raised);
        ``patient``: retry rate-limit 429s while the run's patience lasts."""
        raise NotImplementedError

    def cancelled(self, item: T, sent: bool) -> None:
        """``item`` was cancelled (Ctrl-C); ``sent``: its request had left (may be billed)."""

    def finished(self, item: T, gen: Generation) -> None:
        """``item`` ended with ``gen`` (done or failed)."""


class Run(Generic[T]):
    """Send ``items`` concurrently on the loop: at most ``concurrency`` at a time, each admitted
    by ``guard`` (the budget) when its turn comes and settled with what it cost, however it ends.

    A run of several waits out rate-limit 429s while the run's patience lasts (a 429 is never
    billed); a lone request keeps the ``max_retries`` bound.
    """

    def __init__(
        self,
        items: Sequence[T],
        hooks: RunHooks[T],
        concurrency: int,
        guard: SpendGuard | None = None,
    ) -> None:
        self.items, self.hooks, self.guard = items, hooks, guard
        self.patient = len(items) > 1
        # A lone request has no other to wait for: no limit, and no slot to give back early.
        self.limit = AdaptiveLimit(concurrency) if self.patient else None
        self.started = threading.Event()
        self.settled = threading.Event()  # set when every task has finished, however

    async def run(self) -> None:
        self.started.set()
        try:
            # return_exceptions: wait for *every* task, also after a cancel, so each cancelled
            # request is recorded before the caller is told the run has settled.
            outcomes = await asyncio.gather(
                *(carrying_interrupts(self._one(item)) for item in self.items),
                return_exceptions=True,
            )
        finally:
            self.settled.set()
        for outcome in outcomes:
            if isinstance(outcome, Escaped):
                raise outcome.escaped  # in the run's own task, whose caller carries it out
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome  # a bug or a broken disk, not a failed request (a Generation)

    async def _one(self, item: T) -> None:
        hooks, guard = self.hooks, self.guard
        place = self.limit.slot() if self.limit is not None else contextlib.nullcontext()
        async with place as slot:
            if hooks.hold(item):
                return
            # Admitted when its turn comes, not at the start: what is left by then counts what
            # the requests before it actually cost.
            request = hooks.request(item)
            refused = guard.before_send(request) if guard is not None else None
            if refused is not None:
                hooks.refused(item, refused)
                return
            sent = False

            def on_event(event: ClientEvent) -> None:
                nonlocal sent
                if event.kind == "sending":
                    try:
                        hooks.event(item, event)
                    except NotSent:
                        raise  # held back before a byte left: not sent
                    except Exception:
                        sent = True  # the client goes on and sends it (a broken display)
                        raise
                    sent = True
                    return
                # Under a budget the slot is kept until this request's cost is known, so the
                # next one is admitted against what this one cost, not only its estimate.
                if slot is not None and (guard is None or event.kind != "received"):
                    slot.follow(event)
                hooks.event(item, event)

            hooks.started(item)
            gen: Generation | None = None
            try:
                gen = await hooks.send(item, on_event, self.patient)
            except asyncio.CancelledError:
                hooks.cancelled(item, sent)
                raise
            finally:  # also on a cancel: the reservation must not outlive the request
                if guard is not None:
                    guard.after(request, gen.cost if gen is not None else None)
        hooks.finished(item, gen)


def drive(
    run: Run[Any],
    poll: Callable[[], None] | None = None,
    *,
    poll_s: float = POLL_S,
    coro: Coroutine[Any, Any, None] | None = None,
) -> None:
    """Run ``run`` on the private loop thread while this thread calls ``poll`` (progress) every
    ``poll_s``; ``coro`` wraps ``run.run()`` when the caller needs a context around it.

    Ctrl-C (a KeyboardInterrupt here) cancels every request, waits up to
    :data:`CANCEL_GRACE_S` for each to record itself (cancelled, uncertain, pending), then
    re-raises. A ``poll`` that fails is logged and dropped: a broken progress display must not
    lose paid results.
    """
    future = loop_thread().submit(coro if coro is not None else run.run())
    try:
        # Short, repeated waits instead of one long one: KeyboardInterrupt is delivered to the
        # main thread between them. (Not future.result(timeout=...): its timeout is the builtin
        # TimeoutError, which the run itself may raise, and would then be taken for "not yet".)
        while not concurrent.futures.wait((future,), timeout=poll_s).done:
            if poll is not None and not safe_poll(poll):
                poll = None
        try:
            future.result()  # re-raises what went wrong in the run itself (a bug, not a request)
        except Escaped as escaped:  # an interrupt raised inside a request: the run has settled
            raise escaped.escaped from None
    except KeyboardInterrupt:
        future.cancel()  # cancels the task on the loop thread
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
            if run.started.is_set():
                run.settled.wait(CANCEL_GRACE_S)
        raise


def safe_poll(poll: Callable[[], None]) -> bool:
    """Call a progress display; ``False`` (logged) when it failed."""
    try:
        poll()
    except Exception:
        log.exception("cometnb: the progress display failed; the requests keep running")
        return False
    return True


# --- grids -------------------------------------------------------------------------------------
# Expand a grid of requests, validate it, and run it with each cell's live progress.

# Grid axes in display order, each with the API field it sets.
AXIS_FIELDS: dict[str, str] = {
    "prompt": "prompt",
    "model": "model",
    "size": "size",
    "quality": "quality",
    "format": "output_format",
    "background": "background",
}


def expand_grid(base: ImageRequest, axes: Mapping[str, Sequence[Any]]) -> Grid:
    """The cartesian product of ``axes`` applied to ``base``: one cell per combination.

    >>> grid = expand_grid(ImageRequest("a cat"), {"size": ["1024x1024", "1536x1024"]})
    >>> [c.request.fields["size"] for c in grid.cells]
    ['1024x1024', '1536x1024']
    """
    names = list(axes)
    if not names:  # a single request (most cells): no product, no copy
        return Grid(axes={}, cells=[GridCell(coords={}, request=base)])
    cells = []
    for combo in itertools.product(*(axes[name] for name in names)):
        coords = dict(zip(names, combo, strict=True))
        overrides = {AXIS_FIELDS.get(name, name): value for name, value in coords.items()}
        cells.append(GridCell(coords=coords, request=base.with_overrides(**overrides)))
    return Grid(axes={name: list(axes[name]) for name in names}, cells=cells)


def cell_label(cell: GridCell, limit: int = 40) -> str:
    """``"model=dall-e-3, size=1024x1024"`` (long prompts clipped)."""
    return ", ".join(f"{name}={clip(str(value), limit)}" for name, value in cell.coords.items())


def validate_grid(grid: Grid, *, listed: int = 3, key: Secret | None = None) -> None:
    """Validate every cell; raise one :class:`ValidationError` naming the invalid cells.

    Nothing may be sent when any cell is invalid, so this runs before the first request.
    ``key``: the key the cell resolved (no text may carry it); else looked up per request.
    """
    problems: list[tuple[GridCell, ValidationError]] = []
    for cell in grid.cells:
        try:
            cell.request.validate(key)
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


class _GridHooks(RunHooks[int]):
    """A grid's side of the run: each cell's live progress and its Generation."""

    def __init__(
        self, client: AsyncRunner, grid: Grid, tags: tuple[str, ...], origin: str | None
    ) -> None:
        self.client, self.grid, self.tags, self.origin = client, grid, tags, origin
        self.progress = [CellProgress() for _ in grid.cells]

    def request(self, item: int) -> ImageRequest:
        return self.grid.cells[item].request

    def refused(self, item: int, error: BudgetError) -> None:
        cell = self.grid.cells[item]
        _finish(cell, self.progress[item], _failed(cell.request, error, status="cancelled"))

    def started(self, item: int) -> None:
        progress = self.progress[item]
        progress.state, progress.started = "running", time.monotonic()

    def event(self, item: int, event: ClientEvent) -> None:
        progress = self.progress[item]
        progress.note = describe_event(event)
        if event.kind == "sending":
            progress.sent = True
        if event.kind == "partial" and event.partial_image is not None:
            progress.partial, progress.partial_index = event.partial_image, event.partial_index

    async def send(self, item: int, on_event: OnEvent, patient: bool) -> Generation:
        progress = self.progress[item]

        def on_partial(index: int, data: bytes) -> None:
            progress.partial, progress.partial_index = data, index

        return await self.client.send_checked(
            self.grid.cells[item].request,
            on_partial=on_partial,
            on_event=on_event,
            tags=self.tags,
            origin=self.origin,
            patient=patient,
        )

    def cancelled(self, item: int, sent: bool) -> None:
        cell = self.grid.cells[item]
        _finish(cell, self.progress[item], _failed(cell.request, cancelled_error(sent)))

    def finished(self, item: int, gen: Generation) -> None:
        _finish(self.grid.cells[item], self.progress[item], gen)


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
    key: Secret | None = None,
) -> Grid:
    """Run every cell of ``grid`` (filling ``cell.generation``) and return the grid.

    The caller has validated the grid (:func:`validate_grid`, ``key``: the key it resolved)
    and checked the client's history is writable: a ``%%cometimg`` cell does both once, not
    once per request. ``on_update(progress)`` is called on the calling thread every ``poll_s``
    while the grid runs, and once at the end; it gets one :class:`CellProgress` per cell. A
    failed request becomes a failed Generation in its cell (it does not stop the others). An
    interrupt cancels every request still in flight and raises :class:`CancelledError`. With
    a ``guard`` (the budgets, checked on the whole grid first), a request whose estimate no
    longer fits what is left when its turn comes is not sent: its cell reads "not sent
    (budget)" and holds a ``BudgetError``; nothing in flight stops.
    """
    stored = check_stored(tags, origin, key)  # refused before any cell is sent, not per cell
    hooks = _GridHooks(client, grid, stored, origin)
    run = Run(range(len(grid.cells)), hooks, concurrency, guard)
    poll = None if on_update is None else lambda: on_update(hooks.progress)
    try:
        drive(run, poll, poll_s=poll_s)
    except KeyboardInterrupt:
        for cell, progress in zip(grid.cells, hooks.progress, strict=True):
            if not progress.finished:  # a straggler the grace did not see finish
                _finish(cell, progress, _failed(cell.request, cancelled_error(progress.sent)))
        _last_update(on_update, hooks.progress)
        raise _interrupted(hooks.progress) from None
    _last_update(on_update, hooks.progress)
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


def _last_update(
    on_update: Callable[[Sequence[CellProgress]], None] | None, progress: Sequence[CellProgress]
) -> None:
    if on_update is None:
        return
    with contextlib.suppress(KeyboardInterrupt):  # another Ctrl-C: the cell is stopping anyway
        safe_poll(lambda: on_update(progress))
