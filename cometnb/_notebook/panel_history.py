"""The panel's history browser: newest first, filter, compare, load settings, export.

One job: browsing the active :func:`cometnb.history` (the same one the magic writes to, so both
front ends see each other's records). Thumbnails are made from the stored previews, never
from the originals, and cached per record so refreshing stays cheap.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from cometnb._core.text import clip
from cometnb._notebook.panel_messages import short_message
from cometnb._views.thumbs import THUMB_PX, thumb_uri

if TYPE_CHECKING:
    from cometnb._storage.folder import History
    from cometnb._storage.records import Record

__all__ = ["HistoryBrowser"]

MAX_ROWS = 40  # newest matching records shown; the rest stay reachable through filters
_ALL = ""


def _record_body(rec: Record) -> dict[str, Any]:
    """The request a record was made with (prompt, model and every field sent)."""
    body = getattr(rec, "request", None)
    if isinstance(body, dict) and body:
        return dict(body)
    return {**dict(rec.params or {}), "prompt": rec.prompt, "model": rec.model}


class _Row:
    """One history entry: select box, thumbnail with prompt and model, "Load settings"."""

    def __init__(self, rec: Record, thumb_html: str, on_select: Callable[[], None]) -> None:
        self.record = rec
        self.select = W.Checkbox(value=False, indent=False, layout=W.Layout(width="24px"))
        self.select.add_class("cometnb-select")
        self.select.observe(lambda _c: on_select(), names="value")
        self.info = W.HTML(thumb_html + _caption(rec), layout=W.Layout(flex="1 1 auto"))
        self.load_button = W.Button(description="Load settings", icon="upload")
        self.load_button.layout.width = "130px"
        self.load_button.add_class("cometnb-load")
        # "Edit" puts this record's image in the panel's edit strip (hidden without images).
        self.edit_button = W.Button(description="Edit", icon="pencil", tooltip="Edit this image")
        self.edit_button.layout.width = "80px"
        self.edit_button.layout.display = None if rec.images else "none"
        self.edit_button.add_class("cometnb-edit")
        self.box = W.HBox(
            [self.select, self.info, self.edit_button, self.load_button],
            layout=W.Layout(align_items="center", border_bottom="1px solid #eee"),
        )
        self.box.add_class("cometnb-history-entry")


def _caption(rec: Record) -> str:
    when = rec.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    status = (
        "" if rec.status == "ok" else f" · <b style='color:#b00020'>{html.escape(rec.status)}</b>"
    )
    tags = "".join(f" <code>#{html.escape(t)}</code>" for t in rec.tags or ())
    prompt = clip(rec.prompt, 160)
    return (
        "<div style='display:inline-block;vertical-align:top;max-width:70%'>"
        f"<div>{html.escape(prompt)}</div>"
        f"<div style='color:#666;font-size:90%'>{html.escape(rec.model)} · {when}{status}{tags}"
        "</div></div>"
    )


class HistoryBrowser:
    """Browse, filter, compare, reload and export the active history; ``box`` is the widget.

    ``on_load(body, tags)`` receives a record's request body when "Load settings" is clicked;
    ``report(text)`` shows a short message (errors are reported, never raised).

    Example::

        >>> browser = HistoryBrowser(on_load=lambda body, tags: None, report=print)
        >>> browser.refresh()  # doctest: +SKIP
    """

    def __init__(
        self,
        on_load: Callable[[dict[str, Any], tuple[str, ...]], None],
        report: Callable[[str], None],
        on_edit: Callable[[Record], None] | None = None,
    ) -> None:
        self._on_load = on_load
        self._on_edit = on_edit
        self._report = report
        self._thumbs: dict[str, str] = {}
        self.rows: list[_Row] = []
        self.filter_text = W.Text(placeholder="search prompts", continuous_update=False)
        self.filter_model = W.Dropdown(options=[("all models", _ALL)])
        self.filter_tag = W.Dropdown(options=[("all tags", _ALL)])
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.compare_button = W.Button(description="Compare selected", disabled=True)
        self.compare_button.add_class("cometnb-compare-button")
        self.export_html_button = W.Button(description="Export HTML", icon="download")
        self.export_zip_button = W.Button(description="Export zip", icon="download")
        self.status = W.HTML("")
        self.status.add_class("cometnb-history-status")
        self.entries = W.VBox([], layout=W.Layout(max_height="420px", overflow="auto"))
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
        filters = W.HBox(
            [self.filter_text, self.filter_model, self.filter_tag, self.refresh_button]
        )
        actions = W.HBox([self.compare_button, self.export_html_button, self.export_zip_button])
        box = W.VBox([filters, actions, self.status, self.entries, self.compare_view])
        box.add_class("cometnb-history")
        return box

    def _wire(self) -> None:
        for w in (self.filter_text, self.filter_model, self.filter_tag):
            w.observe(self._guard(lambda _c: self.refresh()), names="value")
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
        """Re-read the history and rebuild the list (selection is kept by record id)."""
        hist = self.history()
        chosen = {r.record.id for r in self.rows if r.select.value}
        self._update_filter_choices(hist)
        found = list(
            hist.find(
                text=str(self.filter_text.value).strip() or None,
                model=self.filter_model.value or None,
                tag=self.filter_tag.value or None,
            )
        )
        found.reverse()  # find() lists oldest first; the browser shows newest first
        shown = found[:MAX_ROWS]
        self.rows = [self._row(rec) for rec in shown]
        for row in self.rows:
            row.select.value = row.record.id in chosen
        self.entries.children = [r.box for r in self.rows]
        more = f" (newest {len(shown)} shown)" if len(found) > len(shown) else ""
        self.status.value = f"{len(found)} of {len(hist)} records{more}"
        self._update_compare_button()

    def _update_filter_choices(self, hist: History) -> None:
        models: dict[str, None] = {}
        tags: dict[str, None] = {}
        for rec in hist:
            models[rec.model] = None
            tags.update(dict.fromkeys(rec.tags or ()))
        _set_options(self.filter_model, "all models", sorted(models))
        _set_options(self.filter_tag, "all tags", sorted(tags))

    def _row(self, rec: Record) -> _Row:
        row = _Row(rec, self._thumb(rec), self._guard_noarg(self._update_compare_button))
        row.load_button.on_click(
            self._guard(lambda _b: self._on_load(_record_body(rec), tuple(rec.tags or ())))
        )
        on_edit = self._on_edit
        if on_edit is not None:
            row.edit_button.on_click(self._guard(lambda _b: on_edit(rec)))
        else:
            row.edit_button.layout.display = "none"
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
        return [r.record for r in self.rows if r.select.value]

    def select(self, record_ids: Iterable[str]) -> None:
        """Tick the entries with these ids (what a click on their check boxes does)."""
        wanted = set(record_ids)
        for row in self.rows:
            row.select.value = row.record.id in wanted

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
        """Export the whole history into ``<history>/exports/`` and show where it went."""
        hist = self.history()
        folder = Path(getattr(hist, "path", None) or _history_dir()) / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"cometnb-history-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
        written = hist.export(target)
        path = Path(written) if isinstance(written, str | Path) else target
        self.status.value = f"Exported to <code>{html.escape(str(path))}</code>"
        return path


def _history_dir() -> Path:
    from cometnb._core.settings import resolve_history_dir

    return resolve_history_dir()


def _set_options(widget: W.Dropdown, all_label: str, values: list[str]) -> None:
    options = [(all_label, _ALL), *((v, v) for v in values)]
    if list(widget.options) != options:
        keep = widget.value
        widget.options = options
        widget.value = keep if keep in values else _ALL


def _thumb_html(rec: Record) -> str:
    """A small inline thumbnail made from the record's stored preview (never the original)."""
    style = (
        f"width:{THUMB_PX}px;height:{THUMB_PX}px;object-fit:cover;border-radius:4px;"
        "margin-right:8px;vertical-align:top;background:#f3f3f3"
    )
    images = list(rec.images or ())
    uri = thumb_uri(images[0]) if images else None
    if uri is None:  # no image, or a missing or broken file: an empty tile, not an error
        return f"<div style='{style};display:inline-block'></div>"
    return f"<img class='cometnb-thumb' src='{uri}' style='{style}'/>"
