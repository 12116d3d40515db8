"""Budget guards: check a cell's whole estimate before the first request, and during a run
refuse requests not yet sent once what is left cannot cover them.

* :func:`ledger` — this kernel's spend so far (every request cometnb finished in this session).
* :func:`check_before` — the whole estimate against ``CometImg.budget`` (session cap),
  ``--budget`` (cell cap) and ``CometImg.confirm_above`` (unless ``--yes``).
* :class:`SpendGuard` — used by the runner (``_client/runner.Run``): before sending a request
  it reserves the request's estimate; when the request ends the reservation becomes the actual
  cost. A request whose estimate no longer fits is not sent. Nothing in flight is abandoned.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cometnb._core import settings as _settings
from cometnb._core.balance import account, check_balance
from cometnb._core.errors import BudgetError
from cometnb._core.prices import Cost, format_spend, format_usd, from_nanos, to_nanos
from cometnb._core.session import current

__all__ = [
    "BUDGET_MEANING",
    "Ledger",
    "SpendGuard",
    "budget_note",
    "check_before",
    "confirm_above",
    "guard_requests",
    "ledger",
    "session_budget",
]

_PROCEED = (
    "Raise it with %config CometImg.budget = USD (or --budget USD for one cell), or send "
    "fewer requests."
)
_PROCEED_CELL = "Raise the cell's --budget USD, or send fewer requests."
# What CometImg.budget means, said once (the trait's help and the README say the same).
BUDGET_MEANING = (
    "USD this kernel session may spend in all: what it spent before the budget was set counts "
    "too (None: no cap)."
)


class Ledger:
    """Money spent in this process: known costs summed, unknown ones counted (thread-safe).

    Amounts are kept in whole nano-dollars (``cost.to_nanos``), so the session's spend is an
    exact sum (``0.51842``, not ``0.5184200000000001``).
    """

    def __init__(self) -> None:
        # Re-entrant: a guard admits under this lock and reads usd/reserved inside it.
        self.lock = threading.RLock()
        self._lock = self.lock
        self._nanos = 0
        self._unknown = 0
        self._requests = 0
        self._reserved = 0

    def add(self, cost: Cost) -> None:
        with self._lock:
            self._requests += 1
            if cost.usd is None:
                self._unknown += 1
            else:
                self._nanos += to_nanos(cost.usd)

    @property
    def usd(self) -> float:
        with self._lock:
            return from_nanos(self._nanos)

    @property
    def reserved(self) -> float:
        """Estimates of requests admitted by a guard and still in flight (any client, thread)."""
        with self._lock:
            return from_nanos(self._reserved)

    def reserve(self, usd: float) -> None:
        with self._lock:
            self._reserved += to_nanos(usd)

    def release(self, usd: float) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - to_nanos(usd))

    @property
    def unknown(self) -> int:
        """How many requests had no price (spent, but not counted in :attr:`usd`)."""
        with self._lock:
            return self._unknown

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def reset(self) -> None:
        with self._lock:
            self._nanos, self._unknown, self._requests, self._reserved = 0, 0, 0, 0

    @property
    def label(self) -> str:
        """``$0.16 this session`` (plus ``and 2 requests of unknown cost``)."""
        text = f"{format_spend(self.usd)} this session"
        unknown = self.unknown
        if unknown:
            text += f" and {unknown} request{'s' if unknown != 1 else ''} of unknown cost"
        return text


def ledger() -> Ledger:
    """This session's spend (the session owns it: a fresh session starts at $0)."""
    return current().part(Ledger)


def session_budget() -> float | None:
    """``CometImg.budget`` in force: the USD this session may spend (``None``: no cap).

    The one reader of the setting; the trait's validator keeps it a number or ``None``.
    """
    return _settings.active().budget


def confirm_above() -> float | None:
    """``CometImg.confirm_above`` in force: a cell estimated above it needs ``--yes``."""
    return _settings.active().confirm_above


@dataclass(frozen=True)
class BudgetLimits:
    """The caps in force for one run (``None`` = no cap)."""

    session_budget: float | None = None
    cell_budget: float | None = None

    @property
    def capped(self) -> bool:
        return self.session_budget is not None or self.cell_budget is not None

    def left(self, spent_in_cell: float, ledger: Ledger) -> float | None:
        """What may still be spent: the tighter of the two caps."""
        lefts = []
        if self.session_budget is not None:
            # In-flight estimates (any guard's) count: they may be billed any moment.
            lefts.append(self.session_budget - ledger.usd - ledger.reserved)
        if self.cell_budget is not None:
            lefts.append(self.cell_budget - spent_in_cell)
        return max(0.0, min(lefts)) if lefts else None


def budget_note(
    budget: float | None, ledger: Ledger | None = None, *, just_set: bool = False
) -> str | None:
    """One line when a session budget leaves nothing because this session already spent it;
    ``None`` otherwise. ``just_set``: said as ``%config CometImg.budget = 0.05`` runs after
    $0.10 was spent (otherwise the budget may have been set first and then reached).

    Example::

        >>> spent = Ledger(); spent.add(Cost(0.10, False, ""))
        >>> budget_note(0.05, spent, just_set=True)  # doctest: +ELLIPSIS
        'budget $0.05 set after $0.10 was already spent this session: nothing left; ...'
    """
    ledger = ledger if ledger is not None else current().part(Ledger)
    spent = ledger.usd
    if budget is None or spent < budget:
        return None
    what = (
        f"budget {format_spend(budget)} set after {format_spend(spent)} was already spent"
        if just_set
        else f"budget {format_spend(budget)} used up: {format_spend(spent)} was spent"
    )
    return (
        f"{what} this session: nothing left; raise it above {format_spend(spent)} "
        "(%config CometImg.budget = USD) or remove it (%config CometImg.budget = None). The "
        "budget counts everything this kernel session spent, before it was set too."
    )


def _used_up(limits: BudgetLimits, ledger: Ledger) -> bool:
    """True when the session budget itself (not the cell's) left nothing before this run."""
    budget = limits.session_budget
    return budget is not None and not _cell_binds(limits, ledger) and ledger.usd >= budget


def _cell_binds(limits: BudgetLimits, ledger: Ledger, cell_spent: float = 0.0) -> bool:
    """True when the cell's --budget (not the session's) is the cap that leaves less."""
    if limits.cell_budget is None:
        return False
    if limits.session_budget is None:
        return True
    session_left = limits.session_budget - ledger.usd - ledger.reserved
    return limits.cell_budget - cell_spent <= session_left


def _which(limits: BudgetLimits, ledger: Ledger) -> str:
    if limits.cell_budget is None:
        return "the session budget (CometImg.budget)"
    if limits.session_budget is None:
        return "the cell's --budget"
    return "the cell's --budget" if _cell_binds(limits, ledger) else "the session budget"


def _proceed(limits: BudgetLimits, ledger: Ledger, cell_spent: float = 0.0) -> str:
    """How to go on, naming the cap that refused (--budget or CometImg.budget)."""
    return _PROCEED_CELL if _cell_binds(limits, ledger, cell_spent) else _PROCEED


def check_before(
    estimates: Sequence[Cost],
    *,
    session_budget: float | None,
    cell_budget: float | None,
    confirm_above: float | None,
    yes: bool,
    ledger: Ledger | None = None,
) -> Cost:
    """Refuse, before the first request, what would pass a budget; returns the total estimate.

    Raises :class:`BudgetError` (one short paragraph: the estimate, the budget left, how to go
    on) when the total would pass a cap, when a cost is unknown while a cap is set, when it is
    above the account's balance as the session knows it (``_core/balance.py``), or when the
    total is above ``confirm_above`` and ``yes`` is not given.
    """
    ledger = ledger if ledger is not None else current().part(Ledger)
    total = Cost.total(estimates)
    count = len(estimates)
    what = f"{count} requests" if count != 1 else "this request"
    limits = BudgetLimits(session_budget, cell_budget)
    if limits.capped:
        unknown = [i for i, c in enumerate(estimates) if c.usd is None]
        if unknown:
            first = estimates[unknown[0]]
            from cometnb._core.prices import UNKNOWN_HINT

            which = "this request" if count == 1 else f"{len(unknown)} of the {count} requests"
            raise BudgetError(
                f"refused: a budget is set and the cost of {which} is unknown "
                f"({first.basis}), so the budget cannot be kept; nothing was sent.",
                hint=UNKNOWN_HINT,
            )
        left = limits.left(0.0, ledger)
        assert left is not None and total.usd is not None
        if total.usd > left + 1e-12 and _used_up(limits, ledger):
            raise BudgetError(
                f"refused ({what} would cost {total.label}; nothing was sent): "
                f"{budget_note(limits.session_budget, ledger)}",
                estimate_usd=total.usd,
                left_usd=0.0,
            )
        if total.usd > left + 1e-12:
            raise BudgetError(
                f"refused: {what} would cost {total.label} and {_which(limits, ledger)} has "
                f"{format_spend(left, exact_below_cent=True)} left; nothing was sent.",
                estimate_usd=total.usd,
                left_usd=left,
                hint=_proceed(limits, ledger),
            )
    check_balance(total, what, ledger.usd)  # the account's own limit, when the session knows it
    over = total.usd is not None and confirm_above is not None and total.usd > confirm_above
    if over and not yes:
        raise BudgetError(
            f"not sent: {what} would cost {total.label}, above CometImg.confirm_above "
            f"({format_usd(confirm_above or 0.0)}).",
            estimate_usd=total.usd,
            hint="Add --yes to the cell to send it anyway.",
        )
    return total


def guard_requests(
    requests: Sequence[Any],
    *,
    session_budget: float | None,
    cell_budget: float | None,
    confirm_above: float | None,
    yes: bool,
    ledger: Ledger | None = None,
) -> SpendGuard | None:
    """:func:`check_before` on the requests' estimates, then the guard that admits each one
    when its turn comes (``None`` when no cap is set). Raises :class:`BudgetError`.

    A cell's whole grid, or the items a batch is about to send, are checked this way.
    """
    limits = BudgetLimits(session_budget, cell_budget)
    unconfirmed = confirm_above is None or yes
    if not limits.capped and unconfirmed and account().last is None:
        return None  # nothing to check (no cap, no balance known): nothing is estimated
    from cometnb._core.prices import estimate_all

    estimates = estimate_all(requests)
    check_before(
        estimates,
        session_budget=session_budget,
        cell_budget=cell_budget,
        confirm_above=confirm_above,
        yes=yes,
        ledger=ledger,
    )
    if not limits.capped:
        return None
    by_request = {id(r): e for r, e in zip(requests, estimates, strict=True)}
    return SpendGuard(limits, ledger=ledger, estimates=by_request)


class SpendGuard:
    """Tracks one run's spend so requests not yet sent stop once the budget cannot cover them.

    ``admit(estimate)`` reserves the estimate and returns ``None``, or returns a
    :class:`BudgetError` saying why the request must not be sent; ``settle(estimate, actual)``
    swaps the reservation for what the request cost (the client adds it to the session ledger).
    Requests are admitted at their estimates and nothing in flight is abandoned, so the spend
    can pass the budget by what the requests in flight cost beyond their estimates.

    Example::

        >>> guard = SpendGuard(BudgetLimits(cell_budget=0.10), ledger=Ledger())
        >>> guard.admit(Cost(0.06, True, "")) is None, guard.admit(Cost(0.06, True, "")) is None
        (True, False)
    """

    def __init__(
        self,
        limits: BudgetLimits,
        *,
        ledger: Ledger | None = None,
        estimates: Mapping[int, Cost] | None = None,
    ) -> None:
        self.limits = limits
        self.ledger = ledger if ledger is not None else current().part(Ledger)
        # Estimates already made for the whole-cell check, by id() of the request object.
        self._estimates: dict[int, Cost] = dict(estimates or {})
        # The ledger's lock: admitting reads the session's spend and reserves atomically,
        # also against other guards (another thread's generate, a panel task).
        self._lock = self.ledger.lock
        self._spent = 0.0  # settled in this run
        self._reserved = 0.0  # estimates of this run's requests in flight
        self.skipped = 0

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def raise_hint(self) -> str:
        """How to send the rest, naming the cap that stopped them (--budget or the session's)."""
        with self._lock:
            cell = _cell_binds(self.limits, self.ledger, self._spent + self._reserved)
        return "Raise --budget" if cell else "Raise %config CometImg.budget"

    def left(self) -> float | None:
        """What may still be sent: the tighter cap, less what is in flight (``None``: no cap)."""
        with self._lock:
            lefts = []
            if self.limits.session_budget is not None:
                # ledger.reserved holds every guard's in-flight estimates, this one's included.
                lefts.append(self.limits.session_budget - self.ledger.usd - self.ledger.reserved)
            if self.limits.cell_budget is not None:
                lefts.append(self.limits.cell_budget - self._spent - self._reserved)
            return max(0.0, min(lefts)) if lefts else None

    def admit(self, estimate: Cost) -> BudgetError | None:
        with self._lock:
            left = self.left()
            if left is None:
                return None
            if estimate.usd is None or estimate.usd > left + 1e-12:
                self.skipped += 1
                return BudgetError(
                    f"not sent: its estimate ({estimate.label}) is more than the budget has "
                    f"left ({format_spend(left, exact_below_cent=True)}).",
                    estimate_usd=estimate.usd,
                    left_usd=left,
                    hint=_proceed(self.limits, self.ledger, self._spent + self._reserved),
                )
            self._reserved += estimate.usd
            self.ledger.reserve(estimate.usd)
            return None

    def _estimate(self, request: Any) -> Cost:
        found = self._estimates.get(id(request))
        if found is None:
            from cometnb._core.prices import estimate

            found = self._estimates[id(request)] = estimate(request)
        return found

    def before_send(self, request: Any) -> BudgetError | None:
        """:meth:`admit` for an :class:`~cometnb._core.generations.ImageRequest`."""
        return self.admit(self._estimate(request))

    def after(self, request: Any, actual: Cost | None) -> None:
        """:meth:`settle` for a request that :meth:`before_send` admitted."""
        est = self._estimate(request)
        self.settle(est, actual if actual is not None else Cost(None, False, "no cost"))

    def settle(self, estimate: Cost, actual: Cost) -> None:
        """The request ended: drop its reservation; count what it cost (the estimate if unknown)."""
        with self._lock:
            if self.limits.capped and estimate.usd is not None:
                self._reserved = max(0.0, self._reserved - estimate.usd)
                self.ledger.release(estimate.usd)
            # An unknown actual is charged at its estimate: the budget must not be passed.
            usd = actual.usd if actual.usd is not None else (estimate.usd or 0.0)
            self._spent += usd
