"""``cometnb.refresh_prices()``: fetch CometAPI's public model catalog and keep it, dated.

The catalog lives at ``GET {root}/api/models`` (the base URL without ``/v1``) and needs no key,
so none is sent. What it states is kept in ``<history folder>/prices/catalog-<UTC time>.json``;
from then on :func:`cometnb._core.prices.active_table` lays it over the built-in table (and a
``prices_file`` still wins). Records already made keep the cost they were stored with.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx

from cometnb._client.base import USER_AGENT, shared_ssl_context
from cometnb._core import settings
from cometnb._core.catalog import table_from_catalog
from cometnb._core.errors import APIError, CometError, ResponseError
from cometnb._core.prices import (
    CATALOG_DIR,
    PriceTable,
    active_table,
    builtin_table,
    with_override,
)

__all__ = ["catalog_url", "refresh_prices"]

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


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
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    try:
        with httpx.Client(
            timeout=_TIMEOUT, transport=transport, verify=shared_ssl_context()
        ) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise ResponseError(
            f"could not read the price catalog at {url}: {type(exc).__name__}",
            hint="Check the connection and try again; the prices in force are unchanged.",
        ) from None
    if not response.is_success:
        raise APIError(
            f"the price catalog at {url} answered HTTP {response.status_code}",
            status=response.status_code,
            hint="The prices in force are unchanged.",
        )
    try:
        return response.json()
    except ValueError:
        raise ResponseError(
            f"the price catalog at {url} did not answer JSON",
            hint="The prices in force are unchanged.",
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
