"""Side lookups beside the image requests: which image models the account's key can use (``GET
/v1/models``, for "did you mean" and the panel) and the public price catalog
(``refresh_prices``, which also teaches the registry later ``gpt-image-2.N`` ids). Each goes
through the one HTTP seam (:mod:`cometnb._client.http`); the account-balance endpoint (issue 23)
belongs here too."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from cometnb._client.http import get
from cometnb._core import settings as _settings
from cometnb._core.byte_limits import MB
from cometnb._core.errors import APIError, CometError, ResponseError, redact
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
    "catalog_url",
    "explain_missing_model",
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
