"""What may be spent: the session's budget and ledger, and the account's balance. A cell's whole
estimate is checked before the first request (against the budgets and what the account has
left), and during a run requests not yet sent are refused once what is left cannot cover them.

* :func:`ledger` — this kernel's spend so far (every request cometnb finished in this session).
* :func:`check_before` — the whole estimate against ``CometImg.budget`` (session cap),
  ``--budget`` (cell cap) and ``CometImg.confirm_above`` (unless ``--yes``).
* :class:`SpendGuard` — used by the runner (``_client/runner.Run``): before sending a request
  it reserves the request's estimate; when the request ends the reservation becomes the actual
  cost. A request whose estimate no longer fits is not sent. Nothing in flight is abandoned."""

from __future__ import annotations

import datetime as _dt
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cometnb._core import settings as _settings
from cometnb._core.errors import BudgetError, ResponseError
from cometnb._core.prices import Cost, format_spend, format_usd, from_nanos, to_nanos
from cometnb._core.secret import Secret
from cometnb._core.session import current

__all__ = [
    "BALANCE_KEY_ENV",
    "BALANCE_URL_ENV",
    "BUDGET_MEANING",
    "DEFAULT_BALANCE_URL",
    "AccountBalance",
    "Balance",
    "KeyQuota",
    "Ledger",
    "SpendGuard",
    "balance_from_quota",
    "balance_key",
    "balance_unread",
    "balance_url",
    "budget_note",
    "check_balance",
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
    above the account's balance as the session knows it (below), or when the
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


# --- The account's balance: what CometAPI's quota endpoint says is left (API_FACTS §11), what the
# session knows of it, and the refusal of a cell or batch whose estimate is larger.
#
# * :class:`Balance` — one answer of ``GET <balance URL>?key=…`` (``cometnb.balance()``), read
#   tolerantly from the documented shape by :func:`balance_from_quota`.
# * :func:`balance_url` / :func:`balance_key` — where it is asked and with which key.
# * :class:`AccountBalance` — the session's part: the last balance read, the spend since (the
#   session ledger, handed in: the budget module imports this one), and a failure to read it,
#   said once.
# * :func:`check_balance` — called by ``budget.check_before``: an estimate above what is left is
#   refused before anything is sent, naming both figures.
#
# The URL carries the key in its query string, so it is a secret like the key: the key is only
# ever added by the HTTP seam (``_client/http.py``) at the moment of sending.

DEFAULT_BALANCE_URL = "https://query.cometapi.com/user/quota"
BALANCE_URL_ENV = "COMETAPI_BALANCE_URL"
BALANCE_KEY_ENV = "COMETAPI_BALANCE_KEY"
# Where the keyless simulator answers the same question (``python -m cometnb.sim``).
SIM_QUOTA_PATH = "/user/quota"


# --- the answer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyQuota:
    """One key of the account as the quota endpoint lists it (by name; never the key)."""

    name: str
    remaining_usd: float | None  # None: unlimited (the endpoint's -1)
    used_usd: float


@dataclass(frozen=True)
class Balance:
    """The account's balance at ``as_of`` (UTC), from CometAPI's quota endpoint.

    ``total_usd`` is what the account has left, ``used_usd`` what it has spent;
    ``key_remaining_usd`` is the quota left on the key asked with (``None``: unlimited, or the
    account lists several keys and the answer does not say which one asked). ``available_usd``
    is what a request can still spend: the smaller of the two.

    Example::

        >>> b = balance_from_quota({"total_quota": 12.5, "total_used_quota": 3,
        ...                          "keys": [{"name": "nb", "remain_quota": -1}]})
        >>> b.total_usd, b.key_remaining_usd, b.available_usd
        (12.5, None, 12.5)
    """

    total_usd: float
    used_usd: float | None
    key_remaining_usd: float | None
    as_of: _dt.datetime
    request_count: int | None = None
    keys: tuple[KeyQuota, ...] = ()

    @property
    def available_usd(self) -> float:
        if self.key_remaining_usd is None:
            return self.total_usd
        return min(self.total_usd, self.key_remaining_usd)

    @property
    def label(self) -> str:
        """``$12.50 left on the account`` (with the key's limit when it is the smaller)."""
        text = f"{format_spend(self.total_usd)} left on the account"
        if self.key_remaining_usd is not None and self.key_remaining_usd < self.total_usd:
            text += f" ({format_spend(self.key_remaining_usd)} on this key)"
        return text

    def __str__(self) -> str:
        used = f", {format_spend(self.used_usd)} used" if self.used_usd is not None else ""
        return f"{self.label}{used}, as of {self.as_of:%Y-%m-%d %H:%M} UTC"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # What a notebook shows for ``cometnb.balance()``: the sentence, not the fields.
        printer.text(f"Balance: {self}")


def _usd(data: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    value = data.get(name)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        if required:
            raise ResponseError(
                f"the quota endpoint answered without a usable {name} ({type(value).__name__})",
                hint="Check CometImg.balance_url; the balance is not known.",
            )
        return None
    return float(value)


def _key_quota(item: Any) -> KeyQuota | None:
    if not isinstance(item, Mapping):
        return None
    remain = _usd(item, "remain_quota")
    return KeyQuota(
        name=str(item.get("name") or "")[:80],
        remaining_usd=None if remain is None or remain < 0 else remain,
        used_usd=_usd(item, "used_quota") or 0.0,
    )


def balance_from_quota(data: object, now: _dt.datetime | None = None) -> Balance:
    """The documented answer (``total_quota``, ``total_used_quota``, ``request_count``,
    ``keys[]{name, remain_quota, used_quota}``) as a :class:`Balance`; unknown fields are
    ignored, a missing ``total_quota`` is a :class:`ResponseError`."""
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]  # a gateway's {"success": true, "data": {...}} envelope
    if not isinstance(data, Mapping):
        raise ResponseError(
            f"the quota endpoint answered a JSON {type(data).__name__}, not an object",
            hint="Check CometImg.balance_url; the balance is not known.",
        )
    total = _usd(data, "total_quota", required=True)
    assert total is not None
    raw_keys = data.get("keys") if isinstance(data.get("keys"), list) else []
    keys = tuple(k for k in (_key_quota(i) for i in raw_keys or []) if k is not None)
    count = data.get("request_count")
    return Balance(
        total_usd=total,
        used_usd=_usd(data, "total_used_quota"),
        # With one key listed it is the key asked with; with several the answer cannot say.
        key_remaining_usd=keys[0].remaining_usd if len(keys) == 1 else None,
        as_of=now or _dt.datetime.now(_dt.timezone.utc),
        request_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        keys=keys,
    )


# --- where to ask -----------------------------------------------------------------------------


def balance_url(explicit: str | None = None) -> str:
    """``balance(url=…)``, ``CometImg.balance_url``, ``$COMETAPI_BALANCE_URL``, the keyless
    simulator's quota route while it answers, then CometAPI's :data:`DEFAULT_BALANCE_URL`."""
    from cometnb._core import settings as _settings

    sim = _settings.simulator_url()
    simulated = sim.rstrip("/").removesuffix("/v1") + SIM_QUOTA_PATH if sim else None
    configured = _settings.active().balance_url or os.environ.get(BALANCE_URL_ENV)
    return explicit or configured or simulated or DEFAULT_BALANCE_URL


def balance_key(explicit: str | Secret | None = None) -> Secret | None:
    """``balance(api_key=…)``, then ``$COMETAPI_BALANCE_KEY`` (CometAPI suggests a key with
    quota 0 for this), then the key requests use."""
    from cometnb._core.settings import resolve_key

    return Secret.of(explicit) or Secret.of(os.environ.get(BALANCE_KEY_ENV)) or resolve_key()


def reads_itself() -> bool:
    """True when a cell or batch may read the balance on its own, once a session: its
    endpoint is configured, or requests go to CometAPI itself or to the keyless simulator
    (not to another server, whose account the default endpoint knows nothing of)."""
    from cometnb._core import settings as _settings

    if _settings.active().balance_url or os.environ.get(BALANCE_URL_ENV):
        return True
    if _settings.simulator_url():
        return True
    return _settings.resolve_base_url() == _settings.DEFAULT_BASE_URL


# --- what the session knows -------------------------------------------------------------------


class AccountBalance:
    """The session's part (``current().part(AccountBalance)``): the last balance read and the
    session's spend at that moment, so what is left now is that balance less what was spent
    since; and whether a failure to read it has been said (once a session)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: Balance | None = None
        self._spent_then = 0  # the ledger's nano-dollars when ``last`` was read
        self.tried = False  # a cell or batch has asked on its own this session
        self.problem: str | None = None  # why the last read failed (None: it did not)
        self._said = False

    def remember(self, balance: Balance, spent_usd: float) -> None:
        """Keep ``balance``, read when the session had spent ``spent_usd`` (its ledger)."""
        with self._lock:
            self.last, self._spent_then, self.tried = balance, to_nanos(spent_usd), True
            self.problem = None

    def left_usd(self, spent_usd: float) -> float | None:
        """What the account can still spend now that the session has spent ``spent_usd``, as
        far as it knows (``None``: unknown)."""
        with self._lock:
            if self.last is None:
                return None
            since = max(0, to_nanos(spent_usd) - self._spent_then)
            return max(0.0, self.last.available_usd - from_nanos(since))

    def failed(self, why: str) -> str | None:
        """Note a failed read; the sentence to show the first time this session, else ``None``."""
        with self._lock:
            self.tried, self.problem = True, why
            if self._said:
                return None
            self._said = True
        return (
            f"cometnb: the account balance could not be read ({why}); generation goes on "
            "without the balance check (said once per session)."
        )


def account() -> AccountBalance:
    """This session's :class:`AccountBalance`."""
    return current().part(AccountBalance)


def balance_unread() -> bool:
    """True when a cell or batch should read the account's balance before its budget check:
    once a session (not known yet, not tried), and only when its endpoint is the account's
    (:func:`reads_itself`). The reading itself is ``_client/lookups.py``'s."""
    known = account()
    return known.last is None and not known.tried and reads_itself()


def check_balance(total: Cost, what: str, spent_usd: float) -> None:
    """Refuse ``what`` (``this request``, ``12 requests``) when its estimate is above what the
    session knows is left on the account (``spent_usd``: the session's ledger now); nothing to
    check while the balance is unknown."""
    left = account().left_usd(spent_usd)
    if left is None or total.usd is None or total.usd <= left + 1e-12:
        return
    last = account().last
    assert last is not None
    raise BudgetError(
        f"refused: {what} would cost {total.label}, more than the account's balance of "
        f"{format_spend(left, exact_below_cent=True)} (CometAPI, read {last.as_of:%H:%M} UTC, "
        "less this session's spend since); nothing was sent.",
        estimate_usd=total.usd,
        left_usd=left,
        hint="Top up the account, or send fewer or cheaper requests; cometnb.balance() reads "
        "it again.",
    )
