"""The account's balance: what CometAPI's quota endpoint says is left (API_FACTS §11), what the
session knows of it, and the refusal of a cell or batch whose estimate is larger.

* :class:`Balance` — one answer of ``GET <balance URL>?key=…`` (``cometnb.balance()``), read
  tolerantly from the documented shape by :func:`balance_from_quota`.
* :func:`balance_url` / :func:`balance_key` — where it is asked and with which key.
* :class:`AccountBalance` — the session's part: the last balance read, the spend since (the
  session ledger, handed in: the budget module imports this one), and a failure to read it,
  said once.
* :func:`check_balance` — called by ``budget.check_before``: an estimate above what is left is
  refused before anything is sent, naming both figures.

The URL carries the key in its query string, so it is a secret like the key: the key is only
ever added by the HTTP seam (``_client/http.py``) at the moment of sending.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cometnb._core.errors import BudgetError, ResponseError
from cometnb._core.prices import Cost, format_spend, from_nanos, to_nanos
from cometnb._core.secret import Secret
from cometnb._core.session import current

__all__ = [
    "BALANCE_KEY_ENV",
    "BALANCE_URL_ENV",
    "DEFAULT_BALANCE_URL",
    "AccountBalance",
    "Balance",
    "KeyQuota",
    "balance_from_quota",
    "balance_key",
    "balance_url",
    "check_balance",
]

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
