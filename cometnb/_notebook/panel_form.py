"""The panel's request form: prompt, model and the options that model accepts; its live
validation, the prompt box and the estimate line beside Generate.

Its one purpose: turn widget values into a validated
:class:`~cometnb._core.generations.ImageRequest` (and back, for "load settings"), showing each
validation error next to the control at fault. Changing the model swaps the option controls to
what ``model_registry.get_caps(model)`` allows,
keeping the values that still apply; an unknown model gets generic controls (size, quality, n).

The panel's prompt box: a textarea that also reports Shift+Enter (which presses Generate).

ipywidgets' ``Textarea`` sends no key events, and ipyevents listens on the whole widget (it
takes focus and stops every keydown), so this is a small anywidget: the front end (an ES
module kept here as a string) renders one ``<textarea>``, keeps ``value`` in step with the
kernel, and on Shift+Enter sends ``{"event": "submit"}`` instead of inserting a newline; any
other key (plain Enter included) behaves as in any textarea.

Live validation for the panel's form: errors appear as controls change, not after a click.

Every change of a control re-checks the request the form describes (the same
:func:`~cometnb._core.generations.ImageRequest.validate` the client runs) and shows the first
problem next to the control at fault; fixing the value clears it at once, and Generate stays
disabled while the form is invalid. Two things are not "invalid" while typing, only not ready:
an empty prompt and a missing key. They are reported when Generate is clicked.

The panel's spend line beside Generate: the estimate of what the controls would send
(updated as they change) and what this kernel session has spent; and the budget check a
click on Generate passes before anything is queued.

Two things are said before the click: when the quality is left to the API ("default" or
"auto") the estimate is its upper bound (the API may choose high), and when a session budget
is set and the estimate passes what is left, the line turns into a warning naming both."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import anywidget
import ipywidgets as W
import traitlets

from cometnb._client.lookups import read_quietly
from cometnb._core import model_registry as caps_mod
from cometnb._core import settings as _settings
from cometnb._core.budget import Balance, account, check_before, ledger, reads_itself
from cometnb._core.errors import ValidationError
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import Cost, active_table, format_spend, format_usd

__all__ = [
    "FIELD_WIDGETS",
    "BalanceLine",
    "LiveValidation",
    "PromptArea",
    "RequestForm",
    "SpendLine",
]

_ESM = """
function render({ model, el }) {
  const area = document.createElement("textarea");
  area.className = "cometnb-prompt-input";
  area.value = model.get("value");
  area.placeholder = model.get("placeholder");
  area.rows = model.get("rows");
  const push = () => { model.set("value", area.value); model.save_changes(); };
  area.addEventListener("input", push);
  const onKey = (event) => {
    if (event.target !== area || event.key !== "Enter" || !event.shiftKey) return;
    if (event.isComposing) return;
    event.preventDefault();  // no newline
    event.stopPropagation();  // and the notebook does not run the cell
    push();  // the text typed so far reaches the kernel before the submit
    model.send({ event: "submit" });
  };
  // On window, capture phase: Notebook 7 matches its shortcuts in the capture phase on the
  // document, so a listener on the textarea would hear Shift+Enter after the cell had run.
  window.addEventListener("keydown", onKey, true);
  model.on("change:value", () => {
    if (area.value !== model.get("value")) area.value = model.get("value");
  });
  model.on("change:placeholder", () => { area.placeholder = model.get("placeholder"); });
  model.on("change:rows", () => { area.rows = model.get("rows"); });
  el.appendChild(area);
  return () => window.removeEventListener("keydown", onKey, true);
}
export default { render };
"""

_CSS = """
.cometnb-prompt-input {
  box-sizing: border-box; width: 100%; resize: vertical; margin: 2px 0;
  padding: 4px 8px; font-family: inherit;
  font-size: var(--jp-widgets-font-size, 13px);
  color: var(--jp-widgets-input-color, inherit);
  background: var(--jp-widgets-input-background-color, #fff);
  border: var(--jp-widgets-input-border-width, 1px) solid
          var(--jp-widgets-input-border-color, #9e9e9e);
}
.cometnb-prompt-input:focus { border-color: var(--jp-widgets-input-focus-border-color, #64b5f6); }
"""


class PromptArea(anywidget.AnyWidget):
    """A multi-line text box whose Shift+Enter calls the ``on_submit`` callbacks.

    Example::

        >>> box = PromptArea(placeholder="Describe the image…")
        >>> seen = []
        >>> box.on_submit(lambda area: seen.append(area.value))
        >>> box.value = "a lighthouse"
        >>> box.submit()
        >>> seen
        ['a lighthouse']
    """

    _esm = _ESM
    _css = _CSS
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    rows = traitlets.Int(3).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_submit: list[Callable[[PromptArea], object]] = []
        self.on_msg(self._on_message)

    def on_submit(self, callback: Callable[[PromptArea], object]) -> None:
        """Call ``callback(self)`` when the user presses Shift+Enter in the box."""
        self._on_submit.append(callback)

    def submit(self) -> None:
        """What Shift+Enter does (tests and code can call it)."""
        for callback in list(self._on_submit):
            callback(self)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":
            self.submit()


# Fallback choices for fields a model accepts without a verified list (unknown models, qwen).
_GENERIC_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
_GENERIC_QUALITIES = ("low", "medium", "high", "auto", "standard", "hd")
# Option controls the panel offers, by API field name; shown only when the model takes them.
# complexity: gpt-image-2.6 only (hidden for every model whose row does not take it).
FIELD_WIDGETS = (
    "size", "quality", "complexity", "output_format", "background", "style", "moderation",
)  # fmt: skip
_LABELS = {
    "prompt": "Prompt",
    "model": "Model",
    "size": "Size",
    "quality": "Quality",
    "complexity": "Complexity",
    "n": "n",
    "output_format": "Format",
    "output_compression": "Compression",
    "background": "Background",
    "style": "Style",
    "moderation": "Moderation",
    "partial_images": "Partial previews",
    "tags": "Tags",
    "key": "API key",
}
# Validation errors name API fields; these live on a differently named control.
_FIELD_ALIASES = {"stream": "partial_images"}
_DEFAULT = ""  # the "(default)" choice: the field is not sent and the API default applies
_ERROR_WIDTH = "420px"  # how wide a field grows to show its error beside the next control
# A fresh panel asks for this quality, not "default": the API's default (auto) may pick high,
# four times medium's price (≈ $0.21 vs ≈ $0.05 for gpt-image-2 at 1024x1024), and a first
# click should cost what the line beside Generate says, not an upper bound. %config
# CometImg.quality, when set, wins; models without a "medium" start at "default".
START_QUALITY = "medium"
EMPTY_PROMPT = "Type a prompt first."


@dataclass
class _Field:
    """One control with its label and the error line shown beneath it."""

    name: str
    widget: W.Widget
    box: W.VBox
    error: W.HTML
    width: str = "150px"

    def show(self, visible: bool) -> None:
        self.box.layout.display = None if visible else "none"

    @property
    def visible(self) -> bool:
        return bool(self.box.layout.display != "none")


def _field(name: str, widget: W.Widget, width: str = "150px") -> _Field:
    label = W.HTML(f"<b>{html.escape(_LABELS[name])}</b>")
    error = W.HTML("", layout=W.Layout(display="none"))
    error.add_class("cometnb-error")
    # auto, not 100%: a widget keeps its 2 px margins, so 100% overflowed and was clipped.
    widget.layout.width = "auto"
    widget.add_class(f"cometnb-{name.replace('_', '-')}")
    box = W.VBox([label, widget, error], layout=W.Layout(width=width, margin="0 8px 4px 0"))
    box.add_class("cometnb-field")
    return _Field(name, widget, box, error, width)


def _dropdown_options(values: Iterable[str]) -> list[tuple[str, str]]:
    return [("default", _DEFAULT), *((v, v) for v in values)]


class RequestForm:
    """The controls that describe one request; ``box`` is the widget to display.

    Example::

        >>> form = RequestForm()
        >>> form.prompt.value = "a lighthouse at dusk"
        >>> form.model.value = "dall-e-3"
        >>> form.build_request().model
        'dall-e-3'
    """

    def __init__(self) -> None:
        # Shift+Enter in it presses Generate (the panel wires ``prompt.on_submit``).
        self.prompt = PromptArea(placeholder="Describe the image…  (Shift+Enter: Generate)", rows=3)
        self.model = W.Combobox(
            value=_settings.active().model,
            # Live first, then ids refresh_prices() learned (assumed), then retired ones;
            # an assumed or retired choice says so under the field.
            options=list(caps_mod.offered_models(also=active_table().learned)),
            placeholder="model name",
            ensure_option=False,
        )
        self.size = W.Combobox(value="", options=[], placeholder="default", ensure_option=False)
        self.quality = W.Dropdown(options=_dropdown_options(()))
        self.complexity = W.Dropdown(options=_dropdown_options(()))
        self.output_format = W.Dropdown(options=_dropdown_options(()))
        self.output_compression = W.IntSlider(value=100, min=0, max=100)
        self.background = W.Dropdown(options=_dropdown_options(()))
        self.style = W.Dropdown(options=_dropdown_options(()))
        self.moderation = W.Dropdown(options=_dropdown_options(()))
        self.partial_images = W.IntSlider(value=0, min=0, max=3)
        self.n = W.BoundedIntText(value=1, min=1, max=10)
        self.tags = W.Text(placeholder="comma, separated")
        # Not per keystroke: the value reaches the kernel on Enter (or the button), else the
        # first character typed would be taken as the whole key.
        self.key = W.Password(placeholder="sk-…  (kept in memory only)", continuous_update=False)
        self.key_button = W.Button(description="Use key", tooltip="Held in memory only")
        self.key_note = W.HTML("")
        self.general_error = W.HTML("", layout=W.Layout(display="none"))
        self.general_error.add_class("cometnb-error")
        self.fields = self._build_fields()
        self.box = self._layout()
        self.model.observe(self._on_model, names="value")
        self.output_format.observe(lambda _c: self._sync_compression(), names="value")
        self.key.observe(self._on_key, names="value")
        self.key_button.on_click(lambda _button: self._take_key(str(self.key.value or "")))
        self.apply_model(self.model.value)
        self._start_quality()
        self.refresh_key_field()

    # --- layout ----------------------------------------------------------------------------

    def _build_fields(self) -> dict[str, _Field]:
        widths = {"prompt": "100%", "model": "190px", "tags": "260px", "key": "260px"}
        names = ("prompt", "model", *FIELD_WIDGETS, "output_compression", "partial_images", "n")
        fields = {
            name: _field(name, getattr(self, name), widths.get(name, "150px"))
            for name in (*names, "tags", "key")
        }
        fields["n"].box.layout.width = fields["n"].width = "80px"
        fields["key"].box.children = (*fields["key"].box.children, self.key_button, self.key_note)
        return fields

    def _layout(self) -> W.VBox:
        f = self.fields
        row = W.Layout(flex_flow="row wrap", align_items="flex-start")
        options = [f[n].box for n in ("model", "size", "quality", "n", *FIELD_WIDGETS[2:])]
        options += [f["output_compression"].box, f["partial_images"].box]
        box = W.VBox(
            [
                f["prompt"].box,
                W.HBox(options, layout=row),
                W.HBox([f["tags"].box, f["key"].box], layout=row),
                self.general_error,
            ]
        )
        box.add_class("cometnb-form")
        return box

    def _start_quality(self) -> None:
        chosen = getattr(_settings.active(), "quality", None)
        for value in (chosen, START_QUALITY):
            if value and value in _option_values(self.quality) and self.fields["quality"].visible:
                self.quality.value = value
                return

    # --- model-dependent controls ----------------------------------------------------------

    def _on_model(self, change: Mapping[str, Any]) -> None:
        self.apply_model(str(change["new"]))

    def apply_model(self, model: str) -> None:
        """Show the controls ``model`` accepts, with its value lists; keep what still applies."""
        caps = caps_mod.get_caps(model.strip())
        self._set_size_choices(caps)
        for name in FIELD_WIDGETS[1:]:
            choices = self._choices_for(name, caps)
            self.fields[name].show(choices is not None)
            self._set_choices(getattr(self, name), choices or ())
        max_n = caps.max_n if caps else 10
        if self.n.value > max_n:
            self.n.value = max_n
        self.n.max = max_n  # the control offers only what the model takes
        streams = bool(caps and caps.streaming)
        self.fields["partial_images"].show(streams)
        if not streams:
            self.partial_images.value = 0
        self._sync_compression()
        self.clear_errors()

    def _choices_for(self, name: str, caps: caps_mod.ModelCaps | None) -> tuple[str, ...] | None:
        """Allowed values of ``name`` for ``caps``; ``None`` hides the control."""
        if caps is None:  # unknown model: only the generic controls
            return _GENERIC_QUALITIES if name == "quality" else None
        if name not in caps.fields:
            return None
        listed = caps.choices(name)
        if listed:
            return listed
        return _GENERIC_QUALITIES if name == "quality" else None

    def _set_size_choices(self, caps: caps_mod.ModelCaps | None) -> None:
        sizes = (caps.sizes if caps else ()) or _GENERIC_SIZES
        self.fields["size"].show(caps is None or "size" in caps.fields)
        self.size.options = list(sizes)
        fixed = caps is not None and not caps.flexible_size and "size" not in caps.unverified
        if fixed and self.size.value not in sizes:
            self.size.value = _DEFAULT

    @staticmethod
    def _set_choices(widget: W.Dropdown, values: Iterable[str]) -> None:
        keep = widget.value
        values = tuple(values)
        widget.options = _dropdown_options(values)
        widget.value = keep if keep in values else _DEFAULT

    def _sync_compression(self) -> None:
        caps = caps_mod.get_caps(str(self.model.value).strip())
        takes = caps is not None and "output_compression" in caps.fields
        self.fields["output_compression"].show(
            takes and self.output_format.value in ("jpeg", "webp")
        )

    # --- the API key -----------------------------------------------------------------------

    def refresh_key_field(self) -> None:
        """Show the masked key field only while no key is configured."""
        self.fields["key"].show(_settings.resolve_api_key() is None)

    def _on_key(self, change: Mapping[str, Any]) -> None:
        self._take_key(str(change["new"] or ""))

    def _take_key(self, raw: str) -> None:
        value = raw.strip()
        if not value:
            return
        # Clear at once so the key never stays in widget state (saved notebooks keep it).
        self.key.value = ""
        try:
            _settings.set_session_key(value)
        except ValidationError as exc:  # too short to be a real key
            self.show_error(ValidationError(exc.message, field="key", hint=exc.hint))
            return
        self.fields["key"].error.layout.display = "none"
        self.key_note.value = "Key set for this session (memory only)."
        self.refresh_key_field()

    # --- request <-> controls --------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The API fields the visible controls set (``None`` = not sent)."""
        fields: dict[str, Any] = {}
        size = str(self.size.value).strip()
        if self.fields["size"].visible and size:
            fields["size"] = size
        for name in FIELD_WIDGETS[1:]:
            value = getattr(self, name).value
            if self.fields[name].visible and value:
                fields[name] = value
        if self.fields["output_compression"].visible:
            fields["output_compression"] = int(self.output_compression.value)
        if self.fields["partial_images"].visible and self.partial_images.value > 0:
            fields["stream"] = True
            fields["partial_images"] = int(self.partial_images.value)
        if self.n.value != 1:
            fields["n"] = int(self.n.value)
        return fields

    def tag_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in str(self.tags.value).split(",") if t.strip())

    def build_request(self) -> ImageRequest:
        """A validated request from the controls; errors are shown next to their control."""
        self.clear_errors()
        try:
            if _settings.resolve_api_key() is None:
                raise ValidationError("Enter your CometAPI key first.", field="key")
            model = str(self.model.value).strip()
            if not str(self.prompt.value).strip():
                raise ValidationError(EMPTY_PROMPT, field="prompt")
            request = ImageRequest(str(self.prompt.value), model or None, **self.values())
            if not model:
                raise ValidationError("Choose or type a model name.", field="model")
            return request.validate()
        except ValidationError as exc:
            self.show_error(exc)
            raise

    def load(self, body: Mapping[str, Any], tags: Iterable[str] = ()) -> None:
        """Put a request body (a history record's settings) back into the controls."""
        self.load_settings(body)
        self.prompt.value = str(body.get("prompt", ""))
        stream = bool(body.get("stream")) and self.fields["partial_images"].visible
        self.partial_images.value = int(body.get("partial_images") or 0) if stream else 0
        self.n.value = max(1, min(10, int(body.get("n") or 1)))
        self.tags.value = ", ".join(tags)
        self.clear_errors()

    def load_settings(self, body: Mapping[str, Any], *, model: bool = True) -> None:
        """Put a record's model (unless ``model=False``), size, quality and the other options
        its model accepts into the controls; prompt, tags, n and streaming stay as they are."""
        if model:
            self.model.value = str(body.get("model") or self.model.value)
        self.size.value = str(body.get("size") or "")
        for name in FIELD_WIDGETS[1:]:
            widget = getattr(self, name)
            value = body.get(name)
            widget.value = value if value in _option_values(widget) else _DEFAULT
        self._sync_compression()
        self.output_compression.value = int(body.get("output_compression") or 100)
        self.clear_errors()

    def summary(self) -> str:
        """The settings in one line: ``gpt-image-2 · 1024x1024 · medium`` ("default" for a
        field not sent)."""
        fields = self.values()
        parts = [str(self.model.value).strip() or "no model"]
        for name in ("size", "quality"):
            if self.fields[name].visible:
                parts.append(str(fields.get(name) or f"default {name}"))
        for name in ("complexity", "output_format", "background", "style", "moderation"):
            if fields.get(name):
                parts.append(f"{name}={fields[name]}")
        if fields.get("n", 1) != 1:
            parts.append(f"n={fields['n']}")
        return " · ".join(parts)

    # --- errors ----------------------------------------------------------------------------

    def show_error(self, exc: ValidationError) -> None:
        """Show ``exc`` under its control (or under the form when no control matches)."""
        name = _FIELD_ALIASES.get(exc.field or "", exc.field or "")
        target = self.fields.get(name)
        shown = target is not None and target.visible
        line = target.error if target is not None and shown else self.general_error
        line.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"
        line.layout.display = None
        if target is not None and shown:
            _widen(target)

    def show_hint(self, name: str, text: str) -> None:
        """A note under control ``name`` that does not block Generate (e.g. a likely typo)."""
        target = self.fields[name]
        target.error.value = f"<span style='color:#8a5a00'>{html.escape(text)}</span>"
        target.error.layout.display = None
        _widen(target)

    def clear_errors(self) -> None:
        for line in (self.general_error, *(f.error for f in self.fields.values())):
            line.value = ""
            line.layout.display = "none"
        for f in self.fields.values():
            if f.box.layout.width == "auto":
                f.box.layout.width = f.width
                f.box.layout.min_width = None
                f.box.layout.max_width = None

    def error_for(self, name: str) -> str:
        """The plain text of the error shown under control ``name`` ("" when none)."""
        line = self.general_error if name == "general" else self.fields[name].error
        return _strip_tags(line.value) if line.layout.display != "none" else ""


def _widen(target: _Field) -> None:
    """Let a field showing a message (error or hint) grow to hold it on a few lines, instead
    of one word a line; ``clear_errors`` puts its width back. The prompt is full width."""
    if target.name == "prompt":
        return
    target.box.layout.width = "auto"
    target.box.layout.min_width = target.width
    target.box.layout.max_width = _ERROR_WIDTH


def _option_values(widget: W.Dropdown) -> tuple[Any, ...]:
    return tuple(v for _label, v in widget.options)


def _strip_tags(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


# A stand-in prompt while the real one is empty, so the other fields can still be checked.
_PLACEHOLDER_PROMPT = "(prompt)"


class LiveValidation:
    """Check ``form`` whenever one of its controls changes; ``on_state(valid)`` is told the
    result (the panel disables Generate with it). ``problem`` holds the error shown, if any.

    Example::

        >>> from cometnb._notebook.panel_form import RequestForm
        >>> form = RequestForm()
        >>> live = LiveValidation(form, on_state=lambda ok: None)
        >>> form.model.value = "dall-e-3"; form.n.value = 1
        >>> live.valid
        True
    """

    def __init__(self, form: RequestForm, on_state: Callable[[bool], None]) -> None:
        self.form = form
        self._on_state = on_state
        self.problem: ValidationError | None = None
        for widget in self._controls():
            widget.observe(self._changed, names="value")
        self.check()

    def _controls(self) -> Iterable[Any]:
        names = (
            *("prompt", "model", "size", "quality", "complexity", "n", "output_format"),
            *("output_compression", "background", "style", "moderation", "partial_images"),
        )
        return [getattr(self.form, name) for name in names]

    @property
    def valid(self) -> bool:
        return self.problem is None

    def _changed(self, _change: Any) -> None:
        self.check()

    def check(self) -> bool:
        """Validate now; show or clear the error; return whether the form is valid."""
        self.problem = self.find_problem()
        self.form.clear_errors()
        if self.problem is not None:
            self.form.show_error(self.problem)
        else:
            self._hint_model_typo()
        self._on_state(self.problem is None)
        return self.problem is None

    def _hint_model_typo(self) -> None:
        """A model name close to a known one is flagged (not refused: CometAPI adds models)."""
        from cometnb._core.model_registry import CAPABILITIES, KNOWN_MODELS, retired_message
        from cometnb._core.text import model_typo_warning

        model = str(self.form.model.value).strip()
        typo = None if model in CAPABILITIES else model_typo_warning(model, KNOWN_MODELS)
        warning = caps_mod.assumed_note(model) or typo
        if model in CAPABILITIES and caps_mod.MODELS[model].status == "retired":
            warning = f"{retired_message(model)} (still sent: CometAPI may route it)"
        if warning:
            self.form.show_hint("model", warning)

    def find_problem(self) -> ValidationError | None:
        """The first thing the model cannot take (an empty prompt is not one)."""
        form = self.form
        model = str(form.model.value).strip()
        if not model:
            return ValidationError("Choose or type a model name.", field="model")
        prompt = str(form.prompt.value)
        text = prompt if prompt.strip() else _PLACEHOLDER_PROMPT
        try:
            ImageRequest(text, model, **form.values()).validate()
        except ValidationError as exc:
            return exc
        return None


# Controls whose value changes the price (the others, such as tags or the key, do not).
_PRICED = ("prompt", "model", "size", "quality", "n", "partial_images", "output_format")


class SpendLine:
    """``≈ $0.05 · $0.158 this session`` beside Generate.

    Example::

        >>> line = SpendLine(form)  # doctest: +SKIP
        >>> line.widget.value  # doctest: +SKIP
        '<span …>≈ $0.05</span> · $0.000 this session'
    """

    def __init__(
        self, form: RequestForm, extra: Callable[[], Mapping[str, Any]] | None = None
    ) -> None:
        self.form = form
        self._extra = extra  # fields beyond the form's (the edit strip's input images)
        self.widget = W.HTML("")
        self.widget.add_class("cometnb-estimate")
        for name in _PRICED:
            getattr(form, name).observe(self._changed, names="value")
        self.refresh()

    def _changed(self, _change: Mapping[str, Any]) -> None:
        self.refresh()

    def request(self) -> ImageRequest | None:
        """What Generate would send now, unvalidated (``None`` without a model)."""
        model = str(self.form.model.value).strip()
        if not model:
            return None
        prompt = str(self.form.prompt.value) or " "
        extra = dict(self._extra()) if self._extra is not None else {}
        return ImageRequest(prompt, model, **self.form.values(), **extra).with_session_defaults()

    def estimate(self) -> Cost | None:
        request = self.request()
        return request.estimate() if request is not None else None

    def refresh(self) -> None:
        """Redraw the line (the controls or the session's spend changed)."""
        try:
            cost = self.estimate()
        except Exception:  # a half-typed size must not break the panel; show no estimate
            cost = None
        parts = []
        if cost is not None:
            tip = html.escape(cost.basis, quote=True)
            parts.append(f'<span title="{tip}">{html.escape(cost.label)}</span>')
            note = self._default_note(cost)
            if note:
                parts.append(f"<i>{html.escape(note)}</i>")
        parts.append(html.escape(ledger().label))
        budget = _settings.active().budget
        if budget is not None:
            parts.append(f"budget ${budget:,.2f}")
        warning = self.over_budget(cost)
        if warning:
            self.widget.value = (
                "<span class='cometnb-over-budget' style='color:#b00020'>⚠ "
                f"{html.escape(warning)}</span>"
            )
            return
        self.widget.value = '<span style="opacity:.8">' + " · ".join(parts) + "</span>"

    def _default_note(self, cost: Cost) -> str:
        """What "default" quality (or size) means for the price shown, when it matters."""
        if "upper bound" not in cost.basis:
            return ""
        fields = self.form.values()
        left = [name for name in ("quality", "size") if fields.get(name, "auto") in ("auto", "")]
        what = " and ".join(left) or "settings"
        return f"{what} left to the API: priced at the most it may choose"

    @staticmethod
    def over_budget(cost: Cost | None) -> str:
        """The warning shown instead of the estimate when it passes the budget left ("" if
        not): the click would be refused, so it is said before it."""
        budget = _settings.active().budget
        if budget is None or cost is None:
            return ""
        left = max(0.0, float(budget) - ledger().usd - ledger().reserved)
        if cost.usd is None:
            return (
                f"cost unknown and a budget is set ({format_usd(left)} left of "
                f"${float(budget):,.2f}): Generate will refuse it"
            )
        if cost.usd <= left + 1e-12:
            return ""
        return (
            f"over budget: this request would cost {cost.label}; the session budget has "
            f"{format_usd(left)} left of ${float(budget):,.2f} (Generate will refuse it)"
        )

    def check(self, request: ImageRequest) -> None:
        """Refuse (``BudgetError``) a request the session budget cannot cover.

        Clicking Generate beside the shown estimate is the confirmation, so ``confirm_above``
        (the magic's ``--yes`` rule) does not apply here.
        """
        check_before(
            [request.estimate()],
            session_budget=_settings.active().budget,
            cell_budget=None,
            confirm_above=None,
            yes=True,
        )


# --- The panel's balance line: what is left on the CometAPI account, beside the session's spend.
#
# It is read when the panel opens and again after each run (never per keystroke), on a worker
# thread so the kernel's loop never waits for the quota endpoint; it is shown only where
# ``_core/budget.reads_itself`` says the endpoint is the account's. An endpoint that fails
# shows "balance unavailable" (the reason in the tooltip; stderr says it once a session).


class BalanceLine:
    """``balance $41.27`` beside the spend line (``widget``); :meth:`refresh` reads it again.

    Example::

        >>> line = BalanceLine()  # doctest: +SKIP
        >>> line.widget.value  # doctest: +SKIP
        '<span title="…">· balance $41.27</span>'
    """

    def __init__(self) -> None:
        self.widget = W.HTML("")
        self.widget.add_class("cometnb-balance")
        self.reading: asyncio.Future[Balance | None] | Future[Balance | None] | None = None

    def refresh(self) -> None:
        """Read the balance again: on a worker thread inside a running loop (a kernel), at once
        otherwise (a script, a test)."""
        if not reads_itself():
            self.widget.value = ""
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.show(read_quietly())
            return
        self.reading = loop.run_in_executor(None, read_quietly)
        self.reading.add_done_callback(self._done)

    def _done(self, reading: Any) -> None:
        # On the kernel's loop, maybe after the panel closed: a line that cannot be drawn any
        # more is no error worth a traceback in the log.
        with contextlib.suppress(Exception):
            failed = reading.cancelled() or reading.exception() is not None
            self.show(None if failed else reading.result())

    def show(self, found: Balance | None) -> None:
        """Draw ``found`` (``None``: the read failed, the reason in the tooltip)."""
        if found is None:
            why = account().problem or "not read"
            self.widget.value = (
                f'<span style="opacity:.7" title="{html.escape(why, quote=True)}">'
                "· balance unavailable</span>"
            )
            return
        left = account().left_usd(ledger().usd)
        shown = format_spend(left if left is not None else found.available_usd)
        tip = html.escape(f"{found}. Cells and batches above it are refused.", quote=True)
        self.widget.value = f'<span style="opacity:.8" title="{tip}">· balance {shown}</span>'
