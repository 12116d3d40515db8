"""``cometnb.balance()``: the account's balance from CometAPI's quota endpoint, read through
the one HTTP seam with the key in the query string (API_FACTS §11); and the quiet read a cell,
a batch or the panel makes, which never stops generation: a failure is said once a session.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import httpx

from cometnb._client.http import get
from cometnb._core.balance import (
    Balance,
    account,
    balance_from_quota,
    balance_key,
    balance_url,
    reads_itself,
)
from cometnb._core.budget import check_before, ledger, session_budget
from cometnb._core.errors import APIError, AuthenticationError, CometError, ValidationError
from cometnb._core.secret import Secret

__all__ = ["balance", "check_uncapped", "read_once", "read_quietly"]

# The answer is a few hundred bytes (a daily breakdown, a few KB); anything past this is not it.
QUOTA_LIMIT = 256 * 1024
TIMEOUT_S = 10.0
# A cell waits at most this long for the balance before going on without it.
QUIET_TIMEOUT_S = 5.0
_HINT = "Nothing was billed. Check CometImg.balance_url and the key, or try again later."


def balance(
    api_key: str | Secret | None = None,
    *,
    url: str | None = None,
    timeout: float = TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> Balance:
    """What is left on the CometAPI account, read now; the session keeps it for its checks.

    ``url`` defaults to ``%config CometImg.balance_url``, ``$COMETAPI_BALANCE_URL``, then
    ``https://query.cometapi.com/user/quota``; the key to ``$COMETAPI_BALANCE_KEY``, then the
    key requests use. A cell or batch whose estimate is above what is left is then refused
    before anything is sent.

    Example::

        >>> b = cometnb.balance()  # doctest: +SKIP
        >>> b.total_usd, b.key_remaining_usd  # doctest: +SKIP
        (41.27, None)
    """
    key = balance_key(api_key)
    del api_key  # from here on only the Secret: no traceback local shows a key given as text
    if key is None:
        raise AuthenticationError(
            "No CometAPI key is configured to read the balance with.",
            hint="Run %cometimg_key, set $COMETAPI_KEY (or $COMETAPI_BALANCE_KEY), or pass "
            "api_key=.",
        )
    where = balance_url(url)
    if not where.startswith(("http://", "https://")):
        raise ValidationError(
            f"the balance URL must start with http:// or https://; got {where[:60]!r}",
            field="balance_url",
        )
    reply = get(
        where,
        what="the account balance",
        limit=QUOTA_LIMIT,
        seconds=timeout,
        key=key,
        key_param="key",
        transport=transport,
        hint=_HINT,
    )
    if reply.status in (401, 403):
        raise AuthenticationError(
            f"{reply.host} refused the key for the balance (HTTP {reply.status}).", hint=_HINT
        )
    if not reply.ok:
        raise APIError(
            f"{reply.host} answered HTTP {reply.status} for the balance.",
            status=reply.status,
            hint=_HINT,
        )
    found = balance_from_quota(reply.json())
    account().remember(found, ledger().usd)
    return found


def read_quietly(transport: httpx.BaseTransport | None = None) -> Balance | None:
    """:func:`balance` for the front ends (the panel after each run): the balance, or ``None``
    when it cannot be read, with one line on stderr the first time this session."""
    try:
        return balance(timeout=QUIET_TIMEOUT_S, transport=transport)
    except CometError as exc:
        note = account().failed(exc.message)
        if note:
            print(note, file=sys.stderr, flush=True)
        return None


def read_once() -> None:
    """Before a cell's or batch's budget check: read the balance once a session, when it is
    not known yet and its endpoint is the account's (``reads_itself``); never raises."""
    known = account()
    if known.last is None and not known.tried and reads_itself():
        read_quietly()


def check_uncapped(requests: Sequence[Any]) -> None:
    """What ``cometnb.batch`` adds to its budget check: the balance read once a session, and,
    while no session budget is set (so no budget check runs), the account's balance alone
    against the whole estimate (``check_before``: the one place estimates are judged)."""
    read_once()
    if session_budget() is None and account().last is not None:
        from cometnb._core.prices import estimate_all

        check_before(
            estimate_all(requests),
            session_budget=None,
            cell_budget=None,
            confirm_above=None,
            yes=True,
        )
