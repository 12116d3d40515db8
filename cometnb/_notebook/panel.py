"""``cometnb.panel()``: an ipywidgets panel for generating images and browsing the history.

The panel follows ipywidgets' "Widget Asynchronous" pattern: a VBox of controls, a button and
an output area; the long work runs as a coroutine on the kernel's event loop, so the notebook
stays responsive, and the buttons are relabelled while it runs and restored when it ends. The
parts live in their own modules: the request form with its validation and estimate
(``panel_form``), the queue that runs each generation as a
:class:`~cometnb._notebook.panel_run.PanelTask` and the result cards (``panel_run``), the
history browser (``panel_history``) and the edit strip (``panel_edit``).

Seen without a live kernel: a static HTML summary shown beside the widget.

A widget needs a kernel (or saved widget state and a CDN) to render; nbconvert HTML without
widget state, GitHub and a notebook reopened without running it show only what the output
holds. So displaying a panel makes two outputs: the widget (its plain-text form one readable
line), and this summary, with its own display id, updated as results arrive. The widget's own
stylesheet hides the summary wherever the widget renders (Lab, Notebook 7, Voila, classic),
so a live panel is not shown twice; where it does not render, the summary is what is seen.

What nbconvert picks (``WidgetsDataTypeFilter``): the widget view only when the notebook
saved the widget's state, else the next mimetype (``text/plain`` for the widget output,
``text/html`` for this one). JupyterLab shows "Error displaying widget: model not found" for
a widget output without state, and this summary below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from cometnb._client.lookups import explain_missing_model
from cometnb._core.errors import BudgetError, ValidationError, short_message
from cometnb._core.errors import CancelledError as CometCancelled
from cometnb._core.generations import ClientEvent
from cometnb._core.progress import describe_event
from cometnb._core.text import clip
from cometnb._notebook.panel_edit import EditStrip, carry_settings
from cometnb._notebook.panel_form import BalanceLine, LiveValidation, RequestForm, SpendLine
from cometnb._notebook.panel_history import HistoryBrowser
from cometnb._notebook.panel_run import PanelTask, ResultGallery, TaskQueue

__all__ = ["HIDE_WHEN_LIVE", "STATIC_CLASS", "Panel", "panel", "static_html"]


if TYPE_CHECKING:
    from cometnb._core.generations import Generation
    from cometnb._storage.records import Record


STATIC_CLASS = "cometnb-static"
STATIC_PX = 128  # longer side of each result shown in the summary
SHOWN = 8  # newest results embedded (previews of a few kB each, never the originals)
# Part of the panel's stylesheet: once the widget renders, its summary output is hidden.
HIDE_WHEN_LIVE = (
    f".jp-OutputArea-child:has(.cometnb-panel) ~ .jp-OutputArea-child:has(.{STATIC_CLASS}),"
    f" .output_area:has(.cometnb-panel) ~ .output_area:has(.{STATIC_CLASS})"
    " { display: none !important; }"
)


def static_html(settings: str, prompt: str, results: Sequence[Generation], note: str) -> str:
    """The summary: the form's settings and prompt, the newest results as small images.

    ``results`` are newest first; ``note`` is the panel's last message (may be empty).
    """
    rows = [
        "<div style='font-weight:600'>cometnb panel "
        "<span style='font-weight:400;color:#666'>(static view: run the notebook for the live "
        "panel)</span></div>",
        f"<div><b>Settings</b>: {html.escape(settings)}</div>",
    ]
    if prompt.strip():
        rows.append(f"<div><b>Prompt</b>: {html.escape(clip(prompt, 300))}</div>")
    if note:
        rows.append(f"<div style='color:#555'>{html.escape(clip(note, 300))}</div>")
    shown = list(results)[:SHOWN]
    if shown:
        rows.append(f"<div><b>Latest results</b> ({len(shown)} of {len(results)} shown):</div>")
        rows.append(
            "<div style='display:flex;flex-wrap:wrap;gap:8px'>"
            + "".join(_result(gen) for gen in shown)
            + "</div>"
        )
    else:
        rows.append("<div style='color:#666'>No results made in this panel yet.</div>")
    return (
        f"<div class='{STATIC_CLASS}' style='border:1px solid #ddd;border-radius:6px;"
        "padding:8px 10px;font-family:sans-serif;font-size:13px;line-height:1.4'>"
        + "".join(rows)
        + "</div>"
    )


def _result(gen: Generation) -> str:
    from cometnb._views.common import thumb_uri

    caption = html.escape(clip(gen.prompt, 60))
    uri = thumb_uri(gen.images[0], STATIC_PX) if gen.images else None
    if uri is None:
        pic = (
            f"<div style='width:{STATIC_PX}px;height:{STATIC_PX // 2}px;background:#f3f3f3;"
            "display:flex;align-items:center;justify-content:center;color:#999'>"
            f"{html.escape(gen.state)}</div>"
        )
    else:
        pic = (
            f"<img src='{uri}' alt='{caption}' style='max-width:{STATIC_PX}px;"
            f"max-height:{STATIC_PX}px;border-radius:4px'/>"
        )
    return (
        f"<figure style='margin:0;width:{STATIC_PX}px'>{pic}"
        f"<figcaption style='font-size:11px;color:#444'>{caption}</figcaption></figure>"
    )


GALLERY_SIZE = 8  # newest generations kept in the panel; the rest live in the history
PREVIEW_PX = 256
TICK_S = 0.5
# How often a displayed panel checks whether another kernel or process wrote to the history
# (History.revision(): two stat calls and two tiny queries); the list is re-read only then.
WATCH_S = 3.0
# Compact display inside the panel only (the shared HTML views size images for full cells).
# Scoped to .cometnb-panel; !important because the views use inline styles.
PANEL_CSS = (
    """<style>
.cometnb-panel .cometnb-gallery .widget-html-content { white-space: normal; }
.cometnb-panel .cometnb-gallery .cometnb-card { max-width: 300px !important; margin: 0 !important; }
.cometnb-panel .cometnb-gallery .cometnb-card:has(.cometnb-edit-pair) {
  max-width: 400px !important; }
.cometnb-panel .cometnb-gallery .cometnb-source img {
  max-width: 64px !important; max-height: 64px !important; }
.cometnb-panel .cometnb-gallery img {
  max-width: 260px !important; max-height: 260px !important; height: auto; }
.cometnb-panel .cometnb-compare img {
  width: 220px !important; height: 220px !important; }
.cometnb-panel .cometnb-compare .widget-html-content { white-space: normal; overflow: auto; }
"""
    + HIDE_WHEN_LIVE
    + """
</style>"""
)


def message_html(text: str, kind: str = "error") -> str:
    """``text`` escaped and coloured for the panel's message line."""
    colour = {"error": "#b00020", "ok": "#1b5e20"}.get(kind, "#333")
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"


def _guarded(report: Callable[[str], None], fn: Callable[[Any], object]) -> Callable[[Any], None]:
    """Wrap a widget callback: an exception becomes one short line, never a traceback."""

    def callback(arg: Any) -> None:
        try:
            fn(arg)
        except Exception as exc:
            report(short_message(exc))

    return callback


class Panel(W.VBox):  # type: ignore[misc]  # ipywidgets ships no type hints
    """The cometnb widget panel. Controls are attributes so code (and tests) can drive it.

    ``prompt``, ``model``, ``size``, ``quality``, ``n``, ``tags``, ``key`` and the other option
    controls come from the :class:`~cometnb._notebook.panel_form.RequestForm` (``panel.form``);
    ``generate_button``, ``cancel_button``, ``progress``, ``message``, ``preview``, ``gallery``
    and ``history_browser`` are the rest. ``generations`` lists the results made here.

    Example::

        >>> p = panel()
        >>> p.prompt.value = "a lighthouse at dusk, oil painting"
        >>> p.model.value = "gpt-image-1-mini"
        >>> p.generate_button.click()  # doctest: +SKIP
        >>> p.wait(60)  # outside a kernel only  # doctest: +SKIP
        True
    """

    def __init__(self, **kwargs: Any) -> None:
        self.form = RequestForm()
        for name in self.form.fields:
            setattr(self, name, getattr(self.form, name))
        self.generations: list[Generation] = []
        self.generate_button = W.Button(description="Generate", button_style="primary", icon="play")
        self.generate_button.add_class("cometnb-generate")
        self.cancel_button = W.Button(description="Cancel", button_style="warning", icon="stop")
        self.cancel_button.add_class("cometnb-cancel")
        self.cancel_button.layout.display = "none"
        self.progress = _html("cometnb-progress")
        self.edit_strip = EditStrip(on_change=lambda: self.spend.refresh())
        self.edit_strip.set_model(str(self.form.model.value))
        # The estimate covers the edit strip's inputs too (input images are billed).
        self.spend = SpendLine(self.form, extra=self.edit_strip.request_fields)
        self.balance = BalanceLine()  # the account's, read now and after each run
        self.message = _html("cometnb-message")
        self.preview = _html("cometnb-preview")
        # One card per result (newest first), each with its own Edit button.
        self.gallery = ResultGallery(self.edit_from, lambda fn: _guarded(self.report, fn))
        self.history_browser = HistoryBrowser(
            on_load=self._load_settings,
            report=self.report,
            on_edit=self.edit_from,
            on_retry=self.retry,
        )
        self._static_id: str | None = None  # the display id of the static summary, once shown
        self._watcher: asyncio.Task[None] | None = None
        self._dropped = 0  # queued requests the last Cancel dropped
        self.history_section = W.Accordion(children=[self.history_browser.box], titles=("History",))
        self.history_section.add_class("cometnb-history-section")
        self.tasks = TaskQueue(self._generate, on_change=self._show_state)
        # Checks the form as it changes; Generate is disabled while the form is invalid.
        self.validation = LiveValidation(self.form, on_state=self._on_valid)
        super().__init__(children=self._children(), **kwargs)
        self.add_class("cometnb-panel")
        self._wire()
        self.balance.refresh()

    def _children(self) -> list[W.Widget]:
        title = W.HTML(PANEL_CSS + "<b style='font-size:115%'>cometnb</b> · image generation")
        buttons = W.HBox(
            [
                self.generate_button,
                self.spend.widget,
                self.balance.widget,
                self.cancel_button,
                self.progress,
            ],
            layout=W.Layout(align_items="center"),
        )
        return [
            title,
            self.form.box,
            self.edit_strip.box,
            buttons,
            self.message,
            self.preview,
            self.gallery,
            self.history_section,
        ]

    def _on_valid(self, valid: bool) -> None:
        self.generate_button.disabled = not valid

    def _wire(self) -> None:
        self.generate_button.on_click(_guarded(self.report, lambda _b: self.submit()))
        self.cancel_button.on_click(_guarded(self.report, lambda _b: self.cancel()))
        self.form.prompt.on_submit(_guarded(self.report, lambda _p: self._press_generate()))
        self.history_section.observe(
            _guarded(self.report, self._on_history_toggle), names="selected_index"
        )
        self.form.model.observe(
            _guarded(self.report, lambda c: self.edit_strip.set_model(str(c["new"]).strip())),
            names="value",
        )

    def _press_generate(self) -> None:
        # Shift+Enter in the prompt: what a click does, and nothing while Generate is disabled
        # (the form is invalid; its error is already shown next to the control at fault).
        if not self.generate_button.disabled:
            self.generate_button.click()

    # --- public actions --------------------------------------------------------------------

    def submit(self) -> PanelTask | None:
        """Validate the controls and queue a generation (what Generate does); None if refused."""
        self.message.value = ""
        try:
            request = self.form.build_request()
        except ValidationError:
            return None  # build_request showed it next to the control at fault
        if self.edit_strip.active:  # the strip holds images: Generate edits them
            try:
                request = request.with_overrides(**self.edit_strip.request_fields()).validate()
            except ValidationError as exc:
                self.report(exc.message)
                return None
        try:
            self.spend.check(request)
        except BudgetError as exc:
            self.report(short_message(exc))
            return None
        task = self.tasks.submit(PanelTask(request, self.form.tag_list()))
        self._show_state()
        return task

    def edit_from(self, source: Any) -> None:
        """Put an image in the edit strip (a Generation, Record, GeneratedImage, bytes, path):
        the next Generate edits it (what the "Edit" buttons do). A Record's or Generation's
        model, size, quality and other settings come with it; when that changes the form,
        the message says what it was and is now, with both estimates."""
        before = (self.form.summary(), self.spend.estimate())
        found = self.edit_strip.add(source)
        if found is None:
            return
        changed = carry_settings(self.form, self.spend, source, before)
        self.spend.refresh()
        what = "Type what to change, then Generate."
        self.report(f"{changed} {what}" if changed else f"Editing {found.label}: {what}", "info")

    def retry(self, record: Record) -> PanelTask | None:
        """Send a (failed) record's request again, inputs included, through what Generate
        does: validation, the session budget, the queue (what a row's "Retry" does)."""
        self.message.value = ""
        try:
            request = record.to_request().validate()
            self.spend.check(request)
        except ValidationError as exc:  # BudgetError is one: nothing is queued
            self.report(short_message(exc))
            return None
        task = self.tasks.submit(PanelTask(request, tuple(record.tags or ())))
        self.report(f"Retrying record {record.id} ({request.model}).", "info")
        self._show_state()
        return task

    def cancel(self, *, keep_queued: bool = False) -> bool:
        """Cancel the running generation and drop the queued ones (``keep_queued``: they run);
        the message says how many were dropped. A request cancelled before it was sent is not
        charged; one already sent may have been billed and stays counted. True if anything
        was cancelled or dropped."""
        dropped = [] if keep_queued else self.tasks.drop_queued()
        running = self.tasks.cancel()
        if running:
            self._dropped = len(dropped)  # said when the running task ends
        elif dropped:
            self.report(f"Dropped {_queued(len(dropped))}; nothing was sent.", "info")
        self._show_state()
        return running or bool(dropped)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued generation has finished (outside a kernel); False on timeout."""
        return self.tasks.wait(timeout)

    def report(self, text: str, kind: str = "error") -> None:
        """Show one short line in the panel's message area."""
        self.message.value = message_html(text, kind)

    def refresh_history(self) -> None:
        """Re-read the history into the browser (done on open and after each generation)."""
        self.history_browser.refresh()

    # --- state shown while tasks run -------------------------------------------------------

    def _show_state(self) -> None:
        busy = self.tasks.busy
        queued = self.tasks.queued
        self.generate_button.description = "Queue another" if busy else "Generate"
        self.generate_button.icon = "plus" if busy else "play"
        self.cancel_button.layout.display = None if busy else "none"
        self.progress.value = self._progress_text() if busy else ""
        self.generate_button.tooltip = f"{queued} waiting" if queued else None

    def _progress_text(self) -> str:
        task = self.tasks.current
        parts: list[str] = []
        if task is not None and task.state == "running":
            parts.append(f"Generating with {task.request.model} · {task.elapsed_s:.1f} s")
            if task.note:
                parts.append(task.note)
        queued = self.tasks.queued
        if queued:
            parts.append(f"{queued} queued")
        return message_html(" · ".join(parts), "info")

    def _on_event(self, task: PanelTask) -> Callable[[ClientEvent], None]:
        def on_event(event: ClientEvent) -> None:
            try:
                self._apply_event(task, event)
                self._show_state()
            except Exception as exc:  # progress display must never break the request
                self.report(short_message(exc))

        return on_event

    def _apply_event(self, task: PanelTask, event: ClientEvent) -> None:
        if event.kind == "sending":
            task.sent = True  # a cancel from now on may be billed
        task.note = describe_event(event)  # the same words the %%cometimg status line uses
        if event.kind == "partial" and event.partial_image:
            self._show_preview(event.partial_image)

    def _show_preview(self, data: bytes) -> None:
        from cometnb._core.images import data_uri, make_preview

        small, _mime = make_preview(data, PREVIEW_PX)
        self.preview.value = (
            f"<img src='{data_uri(small)}' style='max-width:{PREVIEW_PX}px;"
            "border-radius:4px;opacity:.85' title='partial preview'/>"
        )

    async def _tick(self) -> None:
        while True:  # the elapsed time moves even when the client reports nothing
            await asyncio.sleep(TICK_S)
            self._show_state()

    # --- the work of one task (runs on the loop) -------------------------------------------

    async def _generate(self, task: PanelTask) -> None:
        ticker = asyncio.ensure_future(self._tick())
        try:
            gen = await _run_request(task, self._on_event(task))
        except CometCancelled:
            task.state = "cancelled"
            self.report(self._cancelled_text(task), "info")
        except asyncio.CancelledError:
            self.report(self._cancelled_text(task), "info")
            raise
        except Exception as exc:  # API errors and anything unexpected: one short line
            task.state, task.error = "error", exc
            # A missing model: list what the API serves (a short GET, off the kernel's loop).
            await asyncio.to_thread(explain_missing_model, exc, task.request.model or "")
            self.report(short_message(exc))
        else:
            task.result = gen
            self._add_result(gen)
        finally:
            ticker.cancel()
            self.preview.value = ""
            self._after_task()

    def _cancelled_text(self, task: PanelTask) -> str:
        if task.sent:
            est = task.request.estimate()
            text = (
                f"Cancelled after the request was sent: it may have been billed, so its "
                f"estimate ({est.label}) stays in this session's spend."
            )
        else:
            text = "Cancelled before the request was sent: not charged."
        dropped, self._dropped = self._dropped, 0
        if dropped:
            text += f" Dropped {_queued(dropped)}."
        return text

    def _add_result(self, gen: Generation) -> None:
        self.generations.append(gen)
        self.gallery.show(list(reversed(self.generations[-GALLERY_SIZE:])))
        images = len(gen.images)
        note = " (synthetic image from the simulator)" if gen.synthetic else ""
        self.report(f"{images} image(s) in {gen.elapsed_s:.1f} s{note}", "ok")
        self._update_static()

    # --- outside a live kernel: the static summary -----------------------------------------

    def static_html(self) -> str:
        """The panel as static HTML (settings, prompt, newest results as small images): what
        nbconvert, GitHub or a notebook reopened without running it show."""
        note = _strip(str(self.message.value))
        newest = list(reversed(self.generations))
        return static_html(self.form.summary(), str(self.prompt.value), newest, note)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:  # a closed widget has none
            # Not the widget tree's repr; fixed, since this output is never updated.
            bundle["text/plain"] = "cometnb panel (interactive: run the notebook to use it)"
        return bundle  # type: ignore[no-any-return]

    def _ipython_display_(self) -> None:
        """Display the widget and, below it, its static summary (:func:`static_html`)."""
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        if bundle is None:
            return
        display(bundle, raw=True)  # type: ignore[no-untyped-call]
        # Shown again: a second summary with the same id, updated with the first.
        self._static_id = self._static_id or f"cometnb-panel-{uuid.uuid4().hex}"
        summary = {"text/html": self.static_html()}
        display(summary, raw=True, display_id=self._static_id)  # type: ignore[no-untyped-call]
        self.watch_history()

    def _update_static(self) -> None:
        if self._static_id is None:
            return
        with contextlib.suppress(Exception):  # a display hiccup must not break the panel
            from IPython.display import update_display

            summary = {"text/html": self.static_html()}
            update_display(summary, raw=True, display_id=self._static_id)  # type: ignore[no-untyped-call]

    # --- seeing other processes' records ---------------------------------------------------

    def watch_history(self, every_s: float = WATCH_S) -> bool:
        """Check the history every ``every_s`` seconds on the running loop (a kernel's) and
        refresh the open browser when another kernel or process wrote (and the spend line,
        for a budget set meanwhile); started when the panel is displayed, stopped by
        ``close()``. False when there is no running loop."""
        if self._watcher is not None and not self._watcher.done():
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._watcher = loop.create_task(self._watch(every_s))
        return True

    async def _watch(self, every_s: float) -> None:
        browser = self.history_browser
        while self.comm is not None:  # closed widgets stop watching
            await asyncio.sleep(every_s)
            # A budget set (or spend made) elsewhere since: the warning shows before a click.
            with contextlib.suppress(Exception):
                self.spend.refresh()
            if self.history_section.selected_index != 0 or browser.revision is None:
                continue  # the browser is closed: it re-reads when opened
            try:
                token = await asyncio.to_thread(lambda: browser.history().revision())
                if token != browser.revision:
                    browser.refresh()
            except Exception as exc:  # an unreadable index is said once per change, not raised
                self.report(short_message(exc))

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        super().close()

    def _after_task(self) -> None:
        # The history changed (success, failure and cancellation are all recorded).
        with contextlib.suppress(Exception):
            if self.history_section.selected_index == 0:
                self.refresh_history()
        with contextlib.suppress(Exception):
            self.form.refresh_key_field()
        with contextlib.suppress(Exception):
            self.spend.refresh()  # the session's spend changed
        with contextlib.suppress(Exception):
            self.balance.refresh()  # and so did the account's balance

    # --- history browser hooks -------------------------------------------------------------

    def _on_history_toggle(self, change: Mapping[str, Any]) -> None:
        if change["new"] == 0:
            self.refresh_history()

    def _load_settings(self, body: dict[str, Any], tags: tuple[str, ...]) -> None:
        self.form.load(body, tags)
        self.report("Settings loaded into the controls.", "ok")


async def _run_request(task: PanelTask, on_event: Callable[[ClientEvent], None]) -> Generation:
    """Run ``task.request`` on the current loop with the active settings, key and history."""
    from cometnb._client.client import AsyncClient

    async with AsyncClient() as client:
        return await client.run(task.request, on_event=on_event, tags=task.tags, origin="panel")


def _queued(count: int) -> str:
    return f"{count} queued request{'s' if count != 1 else ''}"


def _strip(markup: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _html(css_class: str) -> W.HTML:
    widget = W.HTML("")
    widget.add_class(css_class)
    return widget


def panel(*, open_history: bool = True) -> Panel:
    """Build the generation panel (display it, or leave it as the cell's last expression).

    With ``open_history`` the history browser starts open (and is read now).

    Example::

        >>> import cometnb
        >>> p = cometnb.panel()
        >>> "cometnb-panel" in p._dom_classes
        True
    """
    p = Panel()
    if open_history:
        p.history_section.selected_index = 0  # triggers the first refresh
    return p
