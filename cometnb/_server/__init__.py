"""The Jupyter server extension: every history under the server's root, read without a kernel.

A front end beside the notebook layer: it reads histories through storage's read-only
:class:`~cometnb._storage.browse.Browser` and never imports IPython, ipywidgets, the client or
the simulator. It never writes a history: no index is created, migrated or repaired, no preview
file made, no tag changed. Enabled on install by
``etc/jupyter/jupyter_server_config.d/cometnb.json`` (``jpserver_extensions: {"cometnb":
true}``); ``cometnb._jupyter_server_extension_points`` names this module, so ``import cometnb``
stays light.

Routes, under the server's base URL, all ``GET``, all behind Jupyter's auth (token or login
cookie; 403 without), its ``contents`` read permission and its XSRF / same-site Referer check.
JSON answers carry ``Cache-Control: no-cache`` and an ETag (304 when unchanged). Errors are
Jupyter's JSON ``{"message", "reason"}`` with 400 (a bad parameter, named with what is allowed),
404 (an unknown history, record, image or file) or 503 (an unreadable index, with its reason).

``GET cometnb/api/histories[?refresh=1]``
    ``{"histories": [{"id", "path", "records", "revision", "newest"}], "truncated"}``. Folders
    named ``cometnb-history`` (holding an ``index.sqlite3``) in the root or up to three levels
    below it, and ``$COMETNB_HISTORY``; see :mod:`cometnb._server.catalog` for the walk's
    limits. ``id`` is opaque and stable; ``path`` is relative to the root (absolute for a
    ``$COMETNB_HISTORY`` outside it); ``revision`` changes whenever a record is added or
    re-tagged (poll it for live updates); ``newest`` is the newest record id. ``refresh=1``
    walks again now (otherwise a walk is reused for two seconds). A history whose index cannot
    be read is listed as ``{"id", "path", "error"}`` (the reason, e.g. "damaged: run repair()").

``GET cometnb/api/records?history=ID&q=&model=&tag=&status=&since=&until=``
``&min_cost=&max_cost=&offset=0&limit=50``
    ``{"total", "offset", "limit", "revision", "newest", "records": [...]}``, newest first.
    ``history`` (required) is an id from ``histories``. Filters, all optional and combined:
    ``q`` a case-insensitive substring of the prompt or a revised prompt; ``model``, ``tag``
    exact; ``status`` ``ok|error|cancelled``; ``since`` (inclusive)
    and ``until`` (exclusive) an ISO date or time (UTC when no offset is given) or a Unix
    timestamp; ``min_cost`` / ``max_cost`` USD, inclusive (a record whose cost is unknown
    matches no cost range). ``offset`` >= 0, ``limit`` 1-200 (default 50). The matches are
    exactly ``History.find``'s (reversed). Each record: ``id, created_at`` (ISO, UTC),
    ``timestamp`` (Unix), ``prompt, model, params`` (request fields but prompt and model),
    ``meta`` (what the server reported: size, quality...), ``status, error`` (message and hint,
    or null), ``tags, cost_usd`` (null = unknown), ``cost_estimated, parent, kind, synthetic``
    and ``images: [{"index", "width", "height", "format", "revised_prompt"}]``.

``GET cometnb/api/facets?history=ID``
    Filter choices: ``{"models", "tags", "statuses"}`` each ``[{"value", "count"}]``,
    ``first`` / ``last`` (Unix times of the oldest and newest record), ``records``,
    ``revision``, ``newest``.

``GET cometnb/api/records/RID?history=ID``
    One record: its summary plus ``error_info`` (type, message, hint, status, code...),
    ``http_status, cost_basis, usage, elapsed_s, origin, version, revised_prompts``,
    ``sources`` (an edit's inputs, images then the mask: role, label, filename, format, width,
    height, sha256, ``record`` / ``index`` (the history image it was, or null), ``position``
    (K of its preview route), ``available`` (its file is stored)), ``lineage`` (summaries of its
    ancestors by ``parent``, oldest first, ending with itself) and ``children`` (ids of its
    edits).

``GET cometnb/api/records/RID/images/K/preview?history=ID[&px=N]``
    A small raster (the history's stored preview, WebP; or one made in memory from the
    original when there is none yet, never written), scaled to at most ``px`` (16-2048) when
    given. ``ETag`` and ``Cache-Control: private, max-age=86400``; 304 on ``If-None-Match``.
    404 when no raster can be had (an SVG whose history stored no preview).

``GET cometnb/api/records/RID/images/K/original?history=ID``
    The stored bytes, streamed in 64 KiB chunks, with ETag / 304 and the same caching. PNG,
    JPEG, WebP and GIF (recognised by their bytes) are served inline with their type; anything
    else (SVG, unknown) as ``Content-Disposition: attachment``. Always
    ``X-Content-Type-Options: nosniff`` and ``Content-Security-Policy: sandbox; default-src
    'none'``, so nothing served runs as a document.

``GET cometnb/api/records/RID/images/K/download?history=ID``
    A copy labelled with its provenance, made by ``GeneratedImage.save`` (the one copy
    function) in a temporary folder outside the history; always an attachment, ``no-store``.

``GET cometnb/api/records/RID/sources/K/preview?history=ID[&px=N]``
    A preview of an edit's input K (its ``position`` in ``sources``: images, then the mask),
    as above.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join

from cometnb._server.catalog import Catalog
from cometnb._server.handlers import ROUTES, Services

__all__: list[str] = []


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the routes on ``serverapp`` (jupyter_server calls this by name)."""
    root = Path(os.path.expanduser(serverapp.root_dir))
    services = Services(Catalog(root))
    web_app = serverapp.web_app
    web_app.settings["cometnb_services"] = services
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, route), cls) for route, cls in ROUTES])
    serverapp.log.info("cometnb: history routes at %scometnb/api (root %s)", base, root)
