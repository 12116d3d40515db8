"""The panel's history browser: newest first, filter, compare, load settings, export.

One job: browsing the active :func:`cometnb.history` (the same one the magic writes to, so both
front ends see each other's records). Thumbnails are made from the stored previews, never
from the originals, and cached per record so refreshing stays cheap. Only one page of rows is
built at a time (:class:`Pager`), so a history of 1,000 records browses
as quickly as one of 10; rows keep their height and the list scrolls.

Paging for the panel's history list: only one page of rows is ever built.

A history of 1,000 records must stay as quick to browse as one of 10, so the browser builds
widgets (and thumbnails) for the visible page only; "Newer" / "Older" move a page at a time.
Rows keep their natural height (``flex: 0 0 auto``) inside a list that scrolls, instead of
being squeezed to fit its height.

Export: what is shown (or selected), offered as a link the browser downloads.

A server path means nothing to someone in Voila or on a remote JupyterHub, so the exported
file is offered as a ``download`` link carrying the file itself (a data URI). Files too large
for a link (a zip of many originals) are named by path instead, with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import html
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from cometnb._core.errors import short_message
from cometnb._core.prices import format_usd
from cometnb._core.text import clip
from cometnb._views.common import THUMB_PX, thumb_uri

__all__ = [
    "LINK_MAX_BYTES",
    "LIST_HEIGHT",
    "PAGE_SIZE",
    "ROW_FLEX",
    "HistoryBrowser",
    "Pager",
    "download_link",
    "export_shown",
]


PAGE_SIZE = 20  # rows built at a time: about two screens of ~76 px rows
# The list scrolls inside this: most of the window (about 9 rows on a 1000 px page), never
# so tall that the pager and the form above it leave the screen.
LIST_HEIGHT = "min(70vh, 1100px)"
ROW_FLEX = "0 0 auto"  # a row never shrinks to fit the list (it scrolls instead)


class Pager:
    """Which slice of a newest-first list is shown, with Newer/Older buttons; ``box`` is the
    widget. ``on_change()`` is called when the user moves to another page.

    Example::

        >>> p = Pager(on_change=lambda: None, page_size=20)
        >>> p.set_total(45)
        >>> p.window(), p.label.value
        (range(0, 20), '1–20 of 45')
        >>> p.older_button.click(); p.window()
        range(20, 40)
    """

    def __init__(self, on_change: Callable[[], None], page_size: int = PAGE_SIZE) -> None:
        self.page_size = page_size
        self.page = 0
        self.total = 0
        self._on_change = on_change
        self.newer_button = W.Button(description="‹ Newer", layout=W.Layout(width="90px"))
        self.older_button = W.Button(description="Older ›", layout=W.Layout(width="90px"))
        self.newer_button.add_class("cometnb-page-newer")
        self.older_button.add_class("cometnb-page-older")
        self.label = W.HTML("")
        self.label.add_class("cometnb-page-label")
        self.newer_button.on_click(lambda _b: self.move(-1))
        self.older_button.on_click(lambda _b: self.move(1))
        self.box = W.HBox(
            [self.newer_button, self.label, self.older_button],
            layout=W.Layout(align_items="center", grid_gap="8px", flex_flow="row wrap"),
        )
        self.box.add_class("cometnb-pager")
        self._sync()

    @property
    def pages(self) -> int:
        """How many pages the list has (at least one, even when empty)."""
        return max(1, -(-self.total // self.page_size))

    def set_total(self, total: int) -> None:
        """The list now has ``total`` entries; stay on the same page when it still exists."""
        self.total = max(0, total)
        self.page = min(self.page, self.pages - 1)
        self._sync()

    def reset(self) -> None:
        """Back to the first (newest) page, e.g. when the filter changes."""
        self.page = 0
        self._sync()

    def window(self) -> range:
        """The indexes of the entries on the current page."""
        start = self.page * self.page_size
        return range(start, min(start + self.page_size, self.total))

    def move(self, pages: int) -> None:
        """Go ``pages`` pages older (positive) or newer (negative), within bounds."""
        target = min(max(self.page + pages, 0), self.pages - 1)
        if target != self.page:
            self.page = target
            self._sync()
            self._on_change()

    def _sync(self) -> None:
        shown = self.window()
        self.newer_button.disabled = self.page == 0
        self.older_button.disabled = self.page >= self.pages - 1
        if self.total == 0:
            self.label.value = "no records"
        else:
            self.label.value = f"{shown.start + 1}–{shown.stop} of {self.total:,}"
        # One page needs no buttons: hide the pager, keep the layout calm.
        self.box.layout.display = None if self.total > self.page_size else "none"


if TYPE_CHECKING:
    from cometnb._storage.folder import History
    from cometnb._storage.records import Record


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


_ALL = ""
ROW_THUMB_PX = 64  # denser than the 96 px of the HTML history table: ~9 rows on a screen
ERROR_EXCERPT = 140  # characters of a failure's reason shown on its row (the rest a click away)
SEARCH_DELAY_S = 0.25  # typing pauses this long before the search runs
FAILED_ONLY = " (failed only)"  # marks models in the filter that never produced an image
# Rows keep their size (the list scrolls), captions wrap instead of running under the button,
# and a long prompt shows its first three lines. Scoped to the history browser.
HISTORY_CSS = """<style>
.cometnb-history .cometnb-history-list { flex: 0 0 auto; }
.cometnb-history .cometnb-history-entry { flex: 0 0 auto; min-height: 72px; }
.cometnb-history .cometnb-history-entry .widget-html-content {
  white-space: normal; line-height: 1.3; }
.cometnb-history .cometnb-history-prompt {
  display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical;
  overflow: hidden; overflow-wrap: anywhere; }
.cometnb-history .cometnb-history-entry .widget-button { height: 26px; line-height: 26px; }
.cometnb-history .cometnb-row-note { color: #1b5e20; font-size: 90%; }
.cometnb-history .cometnb-row-error { color: #b00020; font-size: 90%; overflow-wrap: anywhere; }
.cometnb-history .cometnb-row-error summary { cursor: pointer; }
</style>"""


def _record_body(rec: Record) -> dict[str, Any]:
    """The request a record was made with (prompt, model and every field sent)."""
    body = getattr(rec, "request", None)
    if isinstance(body, dict) and body:
        return dict(body)
    return {**dict(rec.params or {}), "prompt": rec.prompt, "model": rec.model}


class _Row:
    """One history entry: select box, thumbnail with prompt, settings and cost (a failure's
    reason), "Edit" (images) or "Retry" (failures), and "Load settings"."""

    def __init__(self, rec: Record, thumb_html: str, on_select: Callable[[], None]) -> None:
        self.record = rec
        self.select = W.Checkbox(value=False, indent=False, layout=W.Layout(width="24px"))
        self.select.add_class("cometnb-select")
        self.select.observe(lambda _c: on_select(), names="value")
        # At least ~260 px for thumbnail and prompt: in a narrow panel the buttons wrap below
        # instead of squeezing the prompt to a few letters a line.
        self.info = W.HTML(
            _row_html(thumb_html, rec), layout=W.Layout(flex="1 1 260px", width="auto")
        )
        self.load_button = W.Button(description="Load settings", icon="upload")
        self.load_button.layout.width = "130px"
        self.load_button.add_class("cometnb-load")
        # "Edit" puts this record's image in the panel's edit strip (hidden without images).
        self.edit_button = W.Button(description="Edit", icon="pencil", tooltip="Edit this image")
        self.edit_button.layout.width = "130px"
        self.edit_button.layout.display = None if rec.images else "none"
        self.edit_button.add_class("cometnb-edit")
        # "Retry" sends a failed request again (through Generate's checks: budget, validation).
        self.retry_button = W.Button(
            description="Retry", icon="repeat", tooltip="Send the same request again"
        )
        self.retry_button.layout.width = "130px"
        self.retry_button.layout.display = None if rec.status != "ok" else "none"
        self.retry_button.add_class("cometnb-retry")
        # Said beside the row that was clicked, not only in the panel's message line.
        self.note = W.HTML("", layout=W.Layout(width="130px"))
        self.note.add_class("cometnb-row-note")
        actions = W.VBox(
            [self.edit_button, self.retry_button, self.load_button, self.note],
            layout=W.Layout(flex="0 0 auto"),
        )
        self.box = W.HBox(
            [self.select, self.info, actions],
            layout=W.Layout(
                align_items="center",
                border_bottom="1px solid #eee",
                flex=ROW_FLEX,
                flex_flow="row wrap",
                padding="2px 0",
            ),
        )
        self.box.add_class("cometnb-history-entry")
        if rec.status != "ok":
            self.box.add_class("cometnb-history-failed")


def _row_html(thumb_html: str, rec: Record) -> str:
    """One row's HTML: thumbnail, prompt, settings line, a failure's reason (all escaped)."""
    return (
        "<div style='display:flex;gap:8px;align-items:flex-start'>"
        f"{thumb_html}{_caption(rec)}</div>"
    )


def _caption(rec: Record) -> str:
    when = rec.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    status = (
        "" if rec.status == "ok" else f" · <b style='color:#b00020'>{html.escape(rec.status)}</b>"
    )
    tags = "".join(f" <code>#{html.escape(t)}</code>" for t in rec.tags or ())
    prompt = clip(rec.prompt, 300)
    from cometnb._views.credentials import record_mark  # the Content Credentials mark (issue 24)

    settings = " · ".join(html.escape(part) for part in _settings_parts(rec))
    return (
        "<div class='cometnb-history-caption' style='flex:1 1 auto;min-width:0'>"
        f"<div class='cometnb-history-prompt' title='{html.escape(prompt, quote=True)}'>"
        f"{html.escape(prompt)}</div>"
        f"<div class='cometnb-history-meta' style='color:#555;font-size:90%'>{settings}</div>"
        f"<div style='color:#777;font-size:85%'>{when}{status}{tags}</div>"
        f"{record_mark(rec)}{_error_html(rec)}</div>"
    )


def _settings_parts(rec: Record) -> list[str]:
    """Model, size, quality ("default" when not sent) and cost, rounded to the cent."""
    params = rec.params
    meta = rec.meta
    size = params.get("size") or meta.get("size") or "default size"
    quality = params.get("quality") or meta.get("quality")
    parts = [rec.model, str(size)]
    if quality:
        parts.append(str(quality))
    n = params.get("n")
    if isinstance(n, int) and n > 1:
        parts.append(f"n={n}")
    parts.append(_cost_text(rec))
    return parts


def _cost_text(rec: Record) -> str:
    try:
        cost = rec.cost
    except Exception:  # an odd stored cost must not break the row
        return "cost unknown"
    if cost.usd is None:
        return "cost unknown"
    shown = format_usd(cost.usd, rough=True)
    return f"≈ {shown}" if cost.estimated else shown


def _error_html(rec: Record) -> str:
    """A failure's reason: a readable excerpt, the full text one click away (``<details>``)."""
    if rec.status == "ok":
        return ""
    reason = " ".join((rec.error or f"{rec.status} (no reason stored)").split())
    if len(reason) <= ERROR_EXCERPT:
        return f"<div class='cometnb-row-error'>{html.escape(reason)}</div>"
    return (
        "<details class='cometnb-row-error'>"
        f"<summary>{html.escape(clip(reason, ERROR_EXCERPT))} (more)</summary>"
        f"<div style='white-space:pre-wrap'>{html.escape(reason)}</div></details>"
    )


class HistoryBrowser:
    """Browse, filter, compare, reload and export the active history; ``box`` is the widget.

    ``on_load(body, tags)`` receives a record's request body when "Load settings" is clicked,
    ``on_edit(record)`` and ``on_retry(record)`` a record when "Edit" or "Retry" is;
    ``report(text)`` shows a short message (errors are reported, never raised). The search
    runs as you type, once typing pauses (:data:`SEARCH_DELAY_S`).

    Example::

        >>> browser = HistoryBrowser(on_load=lambda body, tags: None, report=print)
        >>> browser.refresh()  # doctest: +SKIP
    """

    def __init__(
        self,
        on_load: Callable[[dict[str, Any], tuple[str, ...]], None],
        report: Callable[[str], None],
        on_edit: Callable[[Record], None] | None = None,
        on_retry: Callable[[Record], object] | None = None,
    ) -> None:
        self._on_load = on_load
        self._on_edit = on_edit
        self._on_retry = on_retry
        self._search_timer: asyncio.TimerHandle | None = None
        self.revision: tuple[int, ...] | None = None  # the history's token when last read
        self._report = report
        self._thumbs: dict[str, str] = {}
        self.rows: list[_Row] = []  # the rows of the page shown (only those are built)
        self.found: list[Record] = []  # every record matching the filter, newest first
        self._chosen: dict[str, None] = {}  # selected record ids, kept across pages
        self.pager = Pager(on_change=self._guard_noarg(self._show_page))
        self.filter_text = W.Text(placeholder="search prompts (as you type)")
        self.filter_model = W.Dropdown(options=[("all models", _ALL)])
        self.filter_tag = W.Dropdown(options=[("all tags", _ALL)])
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.compare_button = W.Button(description="Compare selected", disabled=True)
        self.compare_button.add_class("cometnb-compare-button")
        self.export_html_button = W.Button(description="Export HTML", icon="download")
        self.export_zip_button = W.Button(description="Export zip", icon="download")
        self.status = W.HTML("")
        self.status.add_class("cometnb-history-status")
        self.entries = W.VBox(
            [], layout=W.Layout(max_height=LIST_HEIGHT, overflow="hidden auto", flex="0 0 auto")
        )
        self.entries.add_class("cometnb-history-list")
        self.compare_view = W.HTML("")
        self.compare_view.add_class("cometnb-compare")
        self.box = self._layout()
        self._wire()

    def _layout(self) -> W.VBox:
        for w in (self.filter_model, self.filter_tag):
            w.layout.width = "170px"
        self.filter_text.layout.width = "240px"
        for b in (self.refresh_button, self.export_html_button, self.export_zip_button):
            b.layout.width = "120px"
        self.compare_button.layout.width = "200px"
        # The toolbars wrap in a narrow panel (a Lab window of 850 px or less) rather than
        # clip their last controls or shrink the buttons to "Export …"; controls keep size.
        toolbar = W.Layout(flex_flow="row wrap", align_items="center")
        filters = W.HBox(
            [self.filter_text, self.filter_model, self.filter_tag, self.refresh_button],
            layout=toolbar,
        )
        actions = W.HBox(
            [self.compare_button, self.export_html_button, self.export_zip_button],
            layout=toolbar,
        )
        for bar in (filters, actions):
            bar.add_class("cometnb-history-toolbar")
            for control in bar.children:
                control.layout.flex = "0 0 auto"
        box = W.VBox(
            [
                W.HTML(HISTORY_CSS),
                filters,
                actions,
                self.status,
                self.entries,
                self.pager.box,
                self.compare_view,
            ]
        )
        box.add_class("cometnb-history")
        return box

    def _wire(self) -> None:
        self.filter_text.observe(self._guard(lambda _c: self._search_typed()), names="value")
        for w in (self.filter_model, self.filter_tag):
            w.observe(self._guard(lambda _c: self._filter_changed()), names="value")
        self.refresh_button.on_click(self._guard(lambda _b: self.refresh()))
        self.compare_button.on_click(self._guard(lambda _b: self.compare()))
        self.export_html_button.on_click(self._guard(lambda _b: self.export(".html")))
        self.export_zip_button.on_click(self._guard(lambda _b: self.export(".zip")))

    def _guard(self, fn: Callable[[Any], object]) -> Callable[[Any], None]:
        def guarded(arg: Any) -> None:
            try:
                fn(arg)
            except Exception as exc:  # a callback must never break the panel
                self._report(short_message(exc))

        return guarded

    # --- data ------------------------------------------------------------------------------

    @staticmethod
    def history() -> History:
        from cometnb._storage.folder import history

        return history()

    def refresh(self) -> None:
        """Re-read the history and show the current page (selection is kept by record id)."""
        hist = self.history()
        self.revision = hist.revision()
        self._update_filter_choices(hist)
        found = list(
            hist.find(
                text=str(self.filter_text.value).strip() or None,
                model=self.filter_model.value or None,
                tag=self.filter_tag.value or None,
            )
        )
        found.reverse()  # find() lists oldest first; the browser shows newest first
        self.found = found
        self.pager.set_total(len(found))
        self._show_page()
        self.status.value = f"{len(found)} of {len(hist)} records"

    def _filter_changed(self) -> None:
        self.pager.reset()  # a new filter starts at its newest match
        self.refresh()

    def _search_typed(self) -> None:
        """Search once typing pauses; at once outside a running loop (scripts, tests)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._filter_changed()
            return
        if self._search_timer is not None:
            self._search_timer.cancel()
        self._search_timer = loop.call_later(
            SEARCH_DELAY_S, self._guard_noarg(self._filter_changed)
        )

    def _show_page(self) -> None:
        """Build the rows of the current page only (thumbnails are cached per record)."""
        self.rows = [self._row(self.found[i]) for i in self.pager.window()]
        for row in self.rows:
            row.select.value = row.record.id in self._chosen
        self.entries.children = [r.box for r in self.rows]
        self._update_compare_button()

    def _update_filter_choices(self, hist: History) -> None:
        made: dict[str, None] = {}  # models with at least one successful record
        tried: dict[str, None] = {}
        tags: dict[str, None] = {}
        for rec in hist:
            (made if rec.status == "ok" else tried)[rec.model] = None
            tags.update(dict.fromkeys(rec.tags or ()))
        # A typo'd model name that only ever failed is listed last, marked, not beside the
        # real ones.
        failed_only = [(m + FAILED_ONLY, m) for m in sorted(tried) if m not in made]
        _set_options(self.filter_model, "all models", sorted(made), failed_only)
        _set_options(self.filter_tag, "all tags", sorted(tags))

    def _row(self, rec: Record) -> _Row:
        row: _Row

        def selected() -> None:
            if row.select.value:
                self._chosen[rec.id] = None
            else:
                self._chosen.pop(rec.id, None)
            self._update_compare_button()

        def load(_b: Any) -> None:
            self._on_load(_record_body(rec), tuple(rec.tags or ()))
            for other in self.rows:
                other.note.value = ""
            row.note.value = "Loaded into the form."

        row = _Row(rec, self._thumb(rec), self._guard_noarg(selected))
        row.load_button.on_click(self._guard(load))
        on_edit, on_retry = self._on_edit, self._on_retry
        if on_edit is not None:
            row.edit_button.on_click(self._guard(lambda _b: on_edit(rec)))
        else:
            row.edit_button.layout.display = "none"
        if on_retry is not None:
            row.retry_button.on_click(self._guard(lambda _b: on_retry(rec)))
        else:
            row.retry_button.layout.display = "none"
        return row

    def _guard_noarg(self, fn: Callable[[], None]) -> Callable[[], None]:
        wrapped = self._guard(lambda _x: fn())
        return lambda: wrapped(None)

    def _thumb(self, rec: Record) -> str:
        if rec.id not in self._thumbs:
            self._thumbs[rec.id] = _thumb_html(rec)
        return self._thumbs[rec.id]

    # --- actions ---------------------------------------------------------------------------

    def selected(self) -> list[Record]:
        """The ticked records, on any page, newest first."""
        return [rec for rec in self.found if rec.id in self._chosen]

    def select(self, record_ids: Iterable[str]) -> None:
        """Tick the entries with these ids (what a click on their check boxes does)."""
        self._chosen = dict.fromkeys(record_ids)
        for row in self.rows:
            row.select.value = row.record.id in self._chosen
        self._update_compare_button()

    def _update_compare_button(self) -> None:
        count = len(self.selected())
        self.compare_button.disabled = count < 2
        self.compare_button.description = f"Compare selected ({count})"

    def compare(self) -> None:
        """Show the selected records side by side (the view ``History.compare`` gives)."""
        records = self.selected()
        if len(records) < 2:
            self._report("Select two or more entries to compare.")
            return
        from cometnb._views.history import compare_html

        self.compare_view.value = compare_html(records)

    def export(self, suffix: str) -> Path:
        """Export what is shown: the selection if any, else every record matching the filter.

        The file goes to ``<history>/exports/`` and is offered as a download link.
        """
        hist = self.history()
        records = self.selected()
        if records:
            what = f"{len(records)} selected record{'s' if len(records) != 1 else ''}"
        else:
            records = list(self.found)
            filtered = len(records) != len(hist)
            what = f"{len(records)} record{'s' if len(records) != 1 else ''}" + (
                " matching the filter" if filtered else ""
            )
        if not records:
            self._report("Nothing to export: no record matches the filter.")
            return Path(hist.path) / "exports"
        path, status = export_shown(hist, records, suffix, what=what)
        self.status.value = status
        return path


def _set_options(
    widget: W.Dropdown,
    all_label: str,
    values: list[str],
    extra: list[tuple[str, str]] | None = None,
) -> None:
    options = [(all_label, _ALL), *((v, v) for v in values), *(extra or ())]
    if list(widget.options) != options:
        keep = widget.value
        widget.options = options
        widget.value = keep if any(keep == v for _label, v in options) else _ALL


def _thumb_html(rec: Record) -> str:
    """A small inline thumbnail made from the record's stored preview (never the original)."""
    px = ROW_THUMB_PX
    style = (
        f"width:{px}px;height:{px}px;object-fit:cover;border-radius:4px;"
        "flex:0 0 auto;vertical-align:top;background:#f3f3f3"
    )
    images = list(rec.images or ())
    uri = thumb_uri(images[0], THUMB_PX) if images else None
    if uri is None:  # no image: a tile saying why (failed, cancelled, file missing)
        word = rec.status if rec.status != "ok" else "no image"
        return (
            f"<div class='cometnb-thumb-empty' style='{style};display:flex;align-items:center;"
            f"justify-content:center;color:#999;font-size:11px'>{html.escape(word)}</div>"
        )
    return f"<img class='cometnb-thumb' src='{uri}' style='{style}'/>"
