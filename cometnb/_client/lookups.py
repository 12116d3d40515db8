"""Side lookups beside the image requests: which image models the account's key can use (``GET
/v1/models``, for "did you mean" and the panel) and the public price catalog
(``refresh_prices``, which also teaches the registry later ``gpt-image-2.N`` ids). Each goes
through the one HTTP seam (:mod:`cometnb._client.http`), as does the account's balance
(``balance``: CometAPI's quota endpoint, the key in its URL)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from cometnb._client.http import get
from cometnb._core import settings as _settings
from cometnb._core.budget import (
    Balance,
    account,
    balance_from_quota,
    balance_key,
    balance_unread,
    balance_url,
    check_before,
    ledger,
    session_budget,
)
from cometnb._core.byte_limits import MB
from cometnb._core.errors import (
    APIError,
    AuthenticationError,
    CometError,
    ResponseError,
    ValidationError,
    redact,
)
from cometnb._core.model_registry import (
    KNOWN_MODELS,
    image_model_ids,
    is_assumed,
    is_model_gone,
    model_gone_message,
)
from cometnb._core.prices import (
    CATALOG_DIR,
    PriceTable,
    active_table,
    builtin_table,
    table_from_catalog,
    with_override,
)
from cometnb._core.secret import Secret

__all__ = [
    "CATALOG_LIMIT",
    "LIST_LIMIT",
    "balance",
    "catalog_url",
    "check_uncapped",
    "explain_missing_model",
    "read_once",
    "read_quietly",
    "refresh_prices",
    "served_image_models",
]

# --- model_list --------------------------------------------------------------------------------
# When the API says a model does not exist: one line naming the image models it serves now.

LIST_TIMEOUT_S = 5.0
# CometAPI lists a few hundred models in ~100 KB; anything past this is not a model list.
LIST_LIMIT = 4 * MB


def served_image_models(
    base_url: str | None = None,
    api_key: str | Secret | None = None,
    timeout: float = LIST_TIMEOUT_S,
    *,
    transport: httpx.BaseTransport | None = None,
) -> list[str] | None:
    """The image model ids ``GET /v1/models`` lists, or ``None`` when it cannot be read."""
    url = (base_url or _settings.resolve_base_url()).rstrip("/") + "/models"
    try:
        reply = get(
            url,
            what="the model list",
            limit=LIST_LIMIT,
            seconds=timeout,
            key=_settings.resolve_key(api_key),
            transport=transport,
        )
        data: Any = reply.json() if reply.ok else None
        data = data.get("data") if isinstance(data, dict) else None
        if not isinstance(data, list):
            return None
        ids = [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
    except CometError:  # unreachable, over the cap, not JSON: the list is simply unknown
        return None
    return image_model_ids(ids)


def explain_missing_model(
    error: BaseException,
    model: str,
    base_url: str | None = None,
    api_key: str | Secret | None = None,
) -> bool:
    """Give ``error`` the one-line "not served" hint when it says the model is gone.

    Returns True when the error was about the model (and now says so plainly).
    """
    if not isinstance(error, APIError):
        return False
    if not is_model_gone(error.status, error.code, error.message, model):
        return False
    available = served_image_models(base_url, api_key)
    error.hint = redact(model_gone_message(model, available, KNOWN_MODELS))
    return True


# --- price_refresh -----------------------------------------------------------------------------
# ``cometnb.refresh_prices()``: fetch CometAPI's public model catalog and keep it, dated.

_TIMEOUT_S = 30.0
# The real catalog is about 1 MB for every model CometAPI sells; a reply past this is refused.
CATALOG_LIMIT = 32 * MB
_UNCHANGED = "The prices in force are unchanged."


def catalog_url(base_url: str | None = None) -> str:
    """``https://api.cometapi.com/api/models`` for the default base URL."""
    root = _settings.resolve_base_url(base_url)
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return f"{root}/api/models"


def refresh_prices(
    base_url: str | None = None,
    history_dir: str | os.PathLike[str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> PriceTable:
    """Read the catalog, keep it dated in the history folder, and return the table now in force.

    Entries it could not read are listed in the returned table's ``problems`` (never guessed).
    It also refreshes the registry: ids the catalog or ``GET /v1/models`` (with a key) reports
    that match a family rule (a later ``gpt-image-2.N-*``) are kept in the same dated file, in
    the table's ``learned``, and shown as ``assumed`` rows by ``cometnb.models()`` and the panel.

    Example::

        >>> table = cometnb.refresh_prices()  # doctest: +SKIP
        >>> table.get("gpt-image-2").image_out, table.problems  # doctest: +SKIP
        (24.0, ())
    """
    url = catalog_url(base_url)
    data = _fetch(url, transport)
    fetched = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = table_from_catalog(data, builtin_table(), source=f"CometAPI catalog {url}, {fetched}")
    table = _learn_listed(table, base_url, transport)
    folder = _settings.resolve_history_dir(history_dir)
    try:
        _keep(table, folder)
    except OSError as exc:
        raise CometError(
            f"could not keep the price catalog in {folder / CATALOG_DIR}: "
            f"{exc.strerror or type(exc).__name__}",
            hint="Check that the history folder (CometImg.history_dir) is writable.",
        ) from None
    if history_dir is None:
        return active_table()
    # Another folder than the active one: its catalog, with the prices_file still on top.
    return with_override(builtin_table().merged(table))


def _learn_listed(
    table: PriceTable, base_url: str | None, transport: httpx.BaseTransport | None
) -> PriceTable:
    """``table`` with the family-rule ids ``GET /v1/models`` lists added to ``learned`` (the
    list needs the key; without one only the catalog's ids are learned)."""
    key = _settings.resolve_key()
    if key is None:
        return table
    listed = served_image_models(base_url, key, transport=transport)
    if listed is None:
        note = "GET /v1/models could not be read: only the catalog's model ids were learned"
        return replace(table, problems=(*table.problems, note))
    learned = dict(table.learned)
    for model in filter(is_assumed, listed):
        where = "CometAPI catalog and GET /v1/models" if model in learned else "GET /v1/models"
        learned[model] = f"{where}, {table.date}"
    return replace(table, learned=learned)


def _fetch(url: str, transport: httpx.BaseTransport | None) -> object:
    hint = "Check the connection and try again; the prices in force are unchanged."
    reply = get(
        url,
        what="the price catalog",
        limit=CATALOG_LIMIT,
        seconds=_TIMEOUT_S,
        transport=transport,
        hint=hint,
    )
    if not reply.ok:
        raise APIError(
            f"the price catalog at {url} answered HTTP {reply.status}",
            status=reply.status,
            hint=_UNCHANGED,
        )
    try:
        return reply.json()
    except ResponseError:
        raise ResponseError(
            f"the price catalog at {url} did not answer JSON", hint=_UNCHANGED
        ) from None


def _keep(table: PriceTable, history_dir: Path) -> Path:
    folder = history_dir / CATALOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = folder / f"catalog-{stamp}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(table.to_dict(), indent=1), encoding="utf-8")
    os.replace(tmp, path)  # whole or not at all: active_table() never reads half a file
    return path


# --- ``cometnb.balance()``: the account's balance from CometAPI's quota endpoint, read through
# the one HTTP seam with the key in the query string (API_FACTS §11); and the quiet read a cell,
# a batch or the panel makes, which never stops generation: a failure is said once a session.

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
    if balance_unread():
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
