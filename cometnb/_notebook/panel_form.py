"""The panel's request form: prompt, model and the options that model accepts.

Its one purpose: turn widget values into a validated
:class:`~cometnb._core.generations.ImageRequest` (and back, for "load settings"), showing each
validation error next to the control at fault. Changing the model swaps the option controls to
what ``model_registry.get_caps(model)`` allows,
keeping the values that still apply; an unknown model gets generic controls (size, quality, n).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from cometnb._core import model_registry as caps_mod
from cometnb._core import settings as _settings
from cometnb._core.errors import ValidationError
from cometnb._core.generations import ImageRequest
from cometnb._notebook.prompt_area import PromptArea

__all__ = ["FIELD_WIDGETS", "RequestForm"]

# Fallback choices for fields a model accepts without a verified list (unknown models, qwen).
_GENERIC_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
_GENERIC_QUALITIES = ("low", "medium", "high", "auto", "standard", "hd")
# Option controls the panel offers, by API field name; shown only when the model takes them.
FIELD_WIDGETS = ("size", "quality", "output_format", "background", "style", "moderation")
_LABELS = {
    "prompt": "Prompt",
    "model": "Model",
    "size": "Size",
    "quality": "Quality",
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
            options=list(caps_mod.KNOWN_MODELS),
            placeholder="model name",
            ensure_option=False,
        )
        self.size = W.Combobox(value="", options=[], placeholder="default", ensure_option=False)
        self.quality = W.Dropdown(options=_dropdown_options(()))
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
        for name in ("output_format", "background", "style", "moderation"):
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
