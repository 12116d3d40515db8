"""What a ``%%cometimg`` cell shows while it runs, and its final view.

Each view implements :class:`~cometnb._core.protocols.CellView`: it gets ``update`` with the
runner's per-cell progress (on the kernel's main thread, every poll) and ``finish`` with the
result. Three kinds:

* :class:`LiveView` — notebooks (JupyterLab, Notebook 7, VS Code): one display handle updated
  in place, plain HTML + ``text/plain`` (no custom JS); a status line (partial previews when
  streaming) for one request, the comparison grid with per-cell status for several. The
  handle ends up holding the final view, so the magic suppresses the duplicate that IPython
  would show for the returned object (``shows_result``).
* :class:`TextView` — terminal IPython: a line per notable event; IPython prints the result's
  text repr.
* :class:`NullView` — ``--no-display``.

Every string the user typed is HTML-escaped; inline images are downscaled previews only.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from cometnb._client.exchange import describe_edit, edit_path, is_multipart
from cometnb._client.runner import cell_label
from cometnb._core.errors import redact
from cometnb._core.generations import Generation, Grid
from cometnb._core.progress import CellProgress

__all__ = ["LiveView", "NullView", "TextView", "dry_run_text", "status_line"]

Publish = Callable[..., Any]  # IPython.display.display's signature

# Minimum seconds between grid re-renders when only status texts changed (a finished cell
# re-renders at once). The grid embeds every finished preview, so keep the traffic down.
GRID_REFRESH_S = 1.0


def status_line(request_body: dict[str, Any], progress: CellProgress) -> str:
    """``"gpt-image-2 · 1024x1024 · 3 s · waiting 2 s after HTTP 429"`` (plain text)."""
    parts = [str(request_body.get("model", ""))]
    if request_body.get("size"):
        parts.append(str(request_body["size"]))
    parts.append(progress.text())
    return " · ".join(p for p in parts if p)


def _bundle(html_text: str, plain: str) -> dict[str, str]:
    return {"text/html": html_text, "text/plain": plain}


def _result_bundle(result: Generation | Grid) -> dict[str, str]:
    return _bundle(result._repr_html_(), repr(result))


class LiveView:
    """One display handle, updated in place until it shows the final result."""

    def __init__(self, grid: Grid, display: Publish, *, thumbnail_px: int = 512) -> None:
        self.grid = grid
        self._display = display
        self._thumbnail_px = thumbnail_px
        self._last: dict[str, str] | None = None
        self._last_at = 0.0
        self._done = -1
        self._preview: tuple[int | None, str] | None = None  # (partial index, <img> html)
        self._cells: dict[int, str] = {}  # HTML of finished grid cells, drawn once
        self._handle = display(self._render(None), raw=True, display_id=True)

    @property
    def shows_result(self) -> bool:
        return True

    def update(self, progress: Sequence[CellProgress]) -> None:
        done = sum(p.finished for p in progress)
        if done == len(progress):
            return  # finish() shows the final view next: skip an intermediate one
        quiet = time.monotonic() - self._last_at < GRID_REFRESH_S
        if len(self.grid.cells) > 1 and done == self._done and quiet:
            return
        self._done = done
        self._show(self._render(progress))

    def finish(self, result: Generation | Grid) -> None:
        if isinstance(result, Grid) and result is self.grid:
            from cometnb._views.grid import grid_html

            # The grid's own HTML, reusing the cells already drawn while it ran.
            self._show(_bundle(grid_html(result, None, self._cells), repr(result)))
            return
        self._show(_result_bundle(result))

    def clear(self) -> None:
        self._show(_bundle("", ""))

    def _show(self, bundle: dict[str, str]) -> None:
        if bundle == self._last:
            return  # identical output: skip the message
        self._last, self._last_at = bundle, time.monotonic()
        if self._handle is not None:
            self._handle.update(bundle, raw=True)

    def _render(self, progress: Sequence[CellProgress] | None) -> dict[str, str]:
        progress = progress or [CellProgress() for _ in self.grid.cells]
        if len(self.grid.cells) == 1:
            return self._render_single(progress[0])
        return self._render_grid(progress)

    def _render_single(self, progress: CellProgress) -> dict[str, str]:
        line = status_line(self.grid.cells[0].request.to_body(), progress)
        # Text, not an emoji: the hourglass showed as a box where no emoji font exists.
        body = f'<div class="cometnb-status">Working: {html.escape(line)}</div>'
        return _bundle(body + self._partial_html(progress), f"Working: {line}")

    def _partial_html(self, progress: CellProgress) -> str:
        if progress.partial is None:
            return ""
        if self._preview is None or self._preview[0] != progress.partial_index:
            self._preview = (progress.partial_index, _preview_img(progress, self._thumbnail_px))
        return self._preview[1]

    def _render_grid(self, progress: Sequence[CellProgress]) -> dict[str, str]:
        from cometnb._views.grid import grid_html

        status = {i: p.text() for i, p in enumerate(progress) if not p.finished}
        done = sum(p.finished for p in progress)
        plain = f"Working: {done}/{len(progress)} finished"
        return _bundle(grid_html(self.grid, status, self._cells), plain)


def _preview_img(progress: CellProgress, max_px: int) -> str:
    from cometnb._core.errors import CometError
    from cometnb._core.images import data_uri, make_preview

    assert progress.partial is not None
    try:
        data, _mime = make_preview(progress.partial, max_px)
    except CometError:
        return ""  # an undecodable partial is skipped; the final image still arrives
    index = "" if progress.partial_index is None else f" {progress.partial_index + 1}"
    return (
        f'<div class="cometnb-partial"><img src="{data_uri(data)}" alt="partial image{index}" '
        f'style="max-width:{max_px}px;opacity:0.85"></div>'
    )


class TextView:
    """Terminal IPython: prints a line when a cell's state or event changes."""

    def __init__(self, grid: Grid, write: Callable[[str], None] = print) -> None:
        self.grid = grid
        self._write = write
        self._seen: list[tuple[str, str | None]] = [("", None) for _ in grid.cells]

    @property
    def shows_result(self) -> bool:
        return False

    def update(self, progress: Sequence[CellProgress]) -> None:
        for i, p in enumerate(progress):
            key = (p.state, None if p.finished else p.note)
            if key == self._seen[i] or p.state == "queued":
                continue
            self._seen[i] = key
            note = f": {p.note}" if p.note and not p.finished else ""
            self._write(f"{self._label(i)}{p.state}{note}")

    def _label(self, index: int) -> str:
        cell = self.grid.cells[index]
        return f"[{cell_label(cell)}] " if cell.coords else ""

    def finish(self, result: Generation | Grid) -> None:
        pass  # IPython prints the returned object's text repr

    def clear(self) -> None:
        pass


class NullView:
    """``--no-display``: shows nothing (and asks IPython not to show the result either)."""

    @property
    def shows_result(self) -> bool:
        return True

    def update(self, progress: Sequence[CellProgress]) -> None:
        pass

    def finish(self, result: Generation | Grid) -> None:
        pass

    def clear(self) -> None:
        pass


def dry_run_text(grid: Grid, endpoint: str, problems: dict[int, str]) -> str:
    """The request(s) a cell would send, as JSON; the key is never part of a body.

    An edit shows its multipart fields and each input by name, type and size, never its bytes.
    """
    count = len(grid.cells)
    first = grid.cells[0].request.to_body() if grid.cells else {}
    if is_multipart(first):
        endpoint = endpoint.removesuffix("/images/generations") + edit_path(first)
    lines = [f"# dry run: {count} request(s) to POST {endpoint} (nothing sent; key not shown)"]
    for i, cell in enumerate(grid.cells):
        if count > 1:
            lines.append(f"# [{i + 1}/{count}] {cell_label(cell)}")
        if i in problems:
            lines.append(f"# invalid: {problems[i]}")
        shown = describe_edit(cell.request.to_body())
        lines.append(json.dumps(shown, indent=2, ensure_ascii=False))
    # A body refused for holding the key is still shown: never with the key in it.
    return redact("\n".join(lines)).encode("utf-8", "backslashreplace").decode("utf-8")
