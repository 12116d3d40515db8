"""``cometnb.refresh_prices()``: fetch CometAPI's public model catalog and keep it, dated.

The catalog lives at ``GET {root}/api/models`` (the base URL without ``/v1``) and needs no key,
so none is sent; the GET goes through the HTTP seam (:func:`cometnb._client.http.get`: at most
:data:`CATALOG_LIMIT` decoded bytes, 30 s in all, one short error otherwise). What it states is
kept in ``<history folder>/prices/catalog-<UTC time>.json``; from then on
:func:`cometnb._core.prices.active_table` lays it over the built-in table (and a
``prices_file`` still wins). Records already made keep the cost they were stored with.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx

from cometnb._client.http import get
from cometnb._core import settings
from cometnb._core.byte_limits import MB
from cometnb._core.errors import APIError, CometError, ResponseError
from cometnb._core.prices import (
    CATALOG_DIR,
    PriceTable,
    active_table,
    builtin_table,
    table_from_catalog,
    with_override,
)

__all__ = ["CATALOG_LIMIT", "catalog_url", "refresh_prices"]

_TIMEOUT_S = 30.0
# The real catalog is about 1 MB for every model CometAPI sells; a reply past this is refused.
CATALOG_LIMIT = 32 * MB
_UNCHANGED = "The prices in force are unchanged."


def catalog_url(base_url: str | None = None) -> str:
    """``https://api.cometapi.com/api/models`` for the default base URL."""
    root = settings.resolve_base_url(base_url)
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

    Example::

        >>> table = cometnb.refresh_prices()  # doctest: +SKIP
        >>> table.get("gpt-image-2").image_out, table.problems  # doctest: +SKIP
        (24.0, ())
    """
    url = catalog_url(base_url)
    data = _fetch(url, transport)
    fetched = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = table_from_catalog(data, builtin_table(), source=f"CometAPI catalog {url}, {fetched}")
    folder = settings.resolve_history_dir(history_dir)
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
