"""The panel's export: what is shown (or selected), offered as a link the browser downloads.

A server path means nothing to someone in Voila or on a remote JupyterHub, so the exported
file is offered as a ``download`` link carrying the file itself (a data URI). Files too large
for a link (a zip of many originals) are named by path instead, with the reason.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cometnb._storage.folder import History
    from cometnb._storage.records import Record

__all__ = ["LINK_MAX_BYTES", "download_link", "export_shown"]

# Browsers take data URIs of this size in a link without trouble; a bigger export stays a path.
LINK_MAX_BYTES = 40 * 1024 * 1024
_MIME = {".html": "text/html", ".zip": "application/zip", ".jsonl": "application/x-ndjson"}


def export_shown(
    hist: History,
    records: Sequence[Record],
    suffix: str,
    *,
    what: str,
) -> tuple[Path, str]:
    """Export ``records`` into ``<history>/exports/``; returns the path and the status HTML.

    ``what`` says which records they are ("3 selected", "12 matching the filter").
    """
    folder = Path(hist.path) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"cometnb-history-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
    path = Path(hist.export(folder / name, records))
    return path, f"Exported {html.escape(what)}: {download_link(path)}"


def download_link(path: Path, max_bytes: int = LINK_MAX_BYTES) -> str:
    """An ``<a download>`` link holding the file; past ``max_bytes``, its path as text.

    Example::

        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"; _ = p.write_text("{}")
        >>> download_link(p)[:60]
        "<a class='cometnb-download' download='x.jsonl' href='data:ap"
    """
    size = path.stat().st_size
    if size > max_bytes:
        return (
            f"<code>{html.escape(str(path))}</code> ({size / 1e6:.0f} MB: too large for a "
            "download link; export fewer records, or copy the file from the server)"
        )
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name, quote=True)
    return (
        f"<a class='cometnb-download' download='{name}' href='data:{mime};base64,{data}' "
        f"title='{html.escape(str(path), quote=True)}'>Download {name}</a> "
        f"<span style='color:#666'>({_size(size)})</span>"
    )


def _size(size: int) -> str:
    return f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"
