"""The panel's edit strip: the images the next Generate starts from, a mask or markup, and
fidelity.

"Edit" on a result card or a history row puts that image here; a ``FileUpload`` adds files,
another sets the mask and, for models whose registry row takes it (2.6), a third the markup
(annotations on a transparent PNG; never together with a mask). Each reference shows as a small
thumbnail with a remove button. The fidelity control is shown only for models that take
``input_fidelity`` (gpt-image-1 / 1.5).
While the strip holds an image, Generate sends an edit; empty, it generates as before (only
the "Image to edit" upload shows then).

The upload buttons count what the strip holds ("Image to edit (2)", "Mask (1)"): ipywidgets
draws ``description (len(value))``, so after each upload their value is set to one small
stand-in entry per image held (no image bytes go back to the browser). A mask or markup is
checked when it arrives (PNG, alpha, the first image's size, not both: the rule Generate
applies), and shows on a checkerboard; a fully transparent mask says that it edits everywhere.

Carrying a source image's settings into the form when "Edit" is clicked.

An edit of a gpt-image-1-mini/low image should not silently go out as gpt-image-2/medium:
the form takes the source's model, size, quality and the other options that model accepts,
and when that changes what Generate would send, the panel says so, with both estimates.
A source made by a model that cannot edit (dall-e-3, qwen-image) keeps the form's model and
takes only the settings it accepts.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from cometnb._core import images as _decode
from cometnb._core.edit_inputs import ImageInput, resolve_source
from cometnb._core.errors import ValidationError
from cometnb._core.images import make_preview
from cometnb._core.model_registry import FIDELITIES, get_edit_caps, takes_fidelity
from cometnb._core.validation import validate_edit

__all__ = ["EditStrip", "carried_body", "carry_settings"]


if TYPE_CHECKING:
    from cometnb._core.prices import Cost
    from cometnb._notebook.panel_form import RequestForm, SpendLine


def carried_body(source: Any) -> Mapping[str, Any] | None:
    """The request a source was made with (a Record's or a Generation's), else ``None``
    (a file, bytes, a PIL image: nothing to carry)."""
    body = getattr(source, "request", None)
    if isinstance(body, Mapping) and body.get("model"):
        return body
    return None


def _name(source: Any) -> str:
    rid = getattr(source, "record_id", None) or getattr(source, "id", None)
    return f"record {rid}" if isinstance(rid, str) and rid else "the result"


def carry_settings(
    form: RequestForm, spend: SpendLine, source: Any, before: tuple[str, Cost | None]
) -> str | None:
    """Load ``source``'s settings into ``form``; the sentence saying what changed (``None``
    when the form already held them, or the source carries none).

    ``before`` is the form's summary and estimate before the image was added.
    """
    body = carried_body(source)
    if body is None:
        return None
    model = str(body.get("model") or "")
    caps = get_edit_caps(model)
    takes_model = caps is None or caps.can_edit  # unknown models: trust the record
    form.load_settings(body, model=takes_model)
    now = form.summary()
    was, was_cost = before
    now_cost = spend.estimate()
    if now == was:
        return None
    kept = "" if takes_model else f" ({model} cannot edit images: kept {form.model.value})"
    return (
        f"Settings from {_name(source)}{kept}: was {was} ({_label(was_cost)}), "
        f"now {now} ({_label(now_cost)})."
    )


def _label(cost: Cost | None) -> str:
    return cost.label if cost is not None else "no estimate"


THUMB_PX = 72
_EPOCH = datetime.fromtimestamp(0, timezone.utc)
CHECKERBOARD = (
    "background-color:#fff;background-image:linear-gradient(45deg,#ccc 25%,transparent 25%),"
    "linear-gradient(-45deg,#ccc 25%,transparent 25%),linear-gradient(45deg,transparent 75%,"
    "#ccc 75%),linear-gradient(-45deg,transparent 75%,#ccc 75%);background-size:12px 12px;"
    "background-position:0 0,0 6px,6px -6px,-6px 0"
)
FULLY_TRANSPARENT = "fully transparent: edits everywhere"


class EditStrip:
    """References, mask and fidelity for the panel's next request (see the module docstring).

    Example::

        >>> strip = EditStrip()
        >>> strip.add(history()[-1])  # doctest: +SKIP
        >>> strip.request_fields()["images"][0].record_id  # doctest: +SKIP
        '20261122-101500-4821-3f2a9c'
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._images: list[ImageInput] = []
        self._layers: dict[str, ImageInput] = {}  # "mask" or "markup" over the first image
        self._model = ""
        self._on_change = on_change
        self._counting = False  # set while the upload buttons' values are the stand-ins
        self.title = W.HTML("<b>Edit from</b>")
        self.thumbs = W.HBox([], layout=W.Layout(flex_flow="row wrap"))
        self.thumbs.add_class("cometnb-edit-thumbs")
        self.upload = W.FileUpload(accept="image/png,image/jpeg,image/webp", multiple=True)
        self.upload.description = "Image to edit"
        self.upload.add_class("cometnb-edit-upload")
        self.mask_upload = W.FileUpload(accept="image/png", multiple=False)
        self.mask_upload.description = "Mask"
        self.mask_upload.add_class("cometnb-edit-mask")
        self.markup_upload = W.FileUpload(accept="image/png", multiple=False)
        self.markup_upload.description = "Markup"
        self.markup_upload.tooltip = "Annotations (arrows, circles) on a transparent PNG"
        self.markup_upload.add_class("cometnb-edit-markup")
        self.fidelity = W.Dropdown(
            options=[("default", ""), *((f, f) for f in FIDELITIES)],
            description="Fidelity",
            layout=W.Layout(width="180px"),
        )
        self.fidelity.add_class("cometnb-edit-fidelity")
        self.clear_button = W.Button(description="Clear", layout=W.Layout(width="70px"))
        self.clear_button.add_class("cometnb-edit-clear")
        self.error = W.HTML("", layout=W.Layout(display="none"))
        self.error.add_class("cometnb-error")
        controls = W.HBox(
            [self.upload, self.mask_upload, self.markup_upload, self.fidelity, self.clear_button]
        )
        self.box = W.VBox([self.title, self.thumbs, controls, self.error])
        self.box.add_class("cometnb-edit-strip")
        self.upload.observe(self._uploaded, names="value")
        self.mask_upload.observe(lambda c: self._layer_uploaded("mask", c), names="value")
        self.markup_upload.observe(lambda c: self._layer_uploaded("markup", c), names="value")
        self.clear_button.on_click(lambda _b: self.clear())
        self._redraw()

    # --- what the form reads ------------------------------------------------------------

    @property
    def images(self) -> list[ImageInput]:
        return list(self._images)

    @property
    def mask(self) -> ImageInput | None:
        return self._layers.get("mask")

    @property
    def markup(self) -> ImageInput | None:
        return self._layers.get("markup")

    @property
    def active(self) -> bool:
        """True while the strip holds an image: Generate then sends an edit."""
        return bool(self._images)

    def request_fields(self) -> dict[str, Any]:
        """``images``, ``mask``, ``markup`` and ``input_fidelity`` for an ImageRequest (empty
        when inactive)."""
        if not self._images:
            return {}
        fields: dict[str, Any] = {"images": list(self._images), "mask": self.mask}
        if self.markup is not None:
            fields["markup"] = self.markup
        if self.fidelity.value and takes_fidelity(self._model):
            fields["input_fidelity"] = self.fidelity.value
        return fields

    # --- changing it --------------------------------------------------------------------

    def add(self, source: Any, label: str | None = None) -> ImageInput | None:
        """Add a reference (any edit source: a Record, GeneratedImage, bytes, path…).

        A source that cannot be read shows its error in the strip instead of raising.
        """
        try:
            found = resolve_source(source, label=label)
        except ValidationError as exc:
            self._show_error(exc.message)
            return None
        self._images.append(found)
        self._changed()
        return found

    def remove(self, index: int) -> None:
        del self._images[index]
        if not self._images:
            self._layers.clear()
        self._changed()

    def set_mask(self, source: Any | None, label: str | None = None) -> None:
        """Set (or with ``None`` remove) the mask. One that breaks the model's mask rule
        (PNG with alpha, the first image's size, no markup) is refused here, saying why."""
        self._set_layer("mask", source, label)

    def set_markup(self, source: Any | None, label: str | None = None) -> None:
        """Set (or with ``None`` remove) the markup: the mask's rules, on models that take it
        (``EditCaps.markup``), never with a mask; refused here, saying why."""
        self._set_layer("markup", source, label)

    def _set_layer(self, role: str, source: Any | None, label: str | None) -> None:
        if source is None:
            self._layers.pop(role, None)
        else:
            try:
                found = resolve_source(source, label=label)
                if self._images:
                    both = {**self._layers, role: found}
                    validate_edit(
                        self._model,
                        self._images[:1],
                        both.get("mask"),
                        {},
                        markup=both.get("markup"),
                    )
            except ValidationError as exc:
                self._show_error(f"{role.capitalize()} not used: {exc.message}")
                self._redraw()
                return
            self._layers[role] = found
        self._changed()

    def clear(self) -> None:
        self._images.clear()
        self._layers.clear()
        self._changed()

    def set_model(self, model: str) -> None:
        """Show the fidelity control only for models that take it."""
        self._model = model
        self._redraw()

    # --- widgets ------------------------------------------------------------------------

    def _uploaded(self, change: Mapping[str, Any]) -> None:
        if self._counting:
            return
        for item in _upload_items(change.get("new")):
            self.add(bytes(item["content"]), label=str(item.get("name") or "upload"))
        self._show_counts()

    def _layer_uploaded(self, role: str, change: Mapping[str, Any]) -> None:
        if self._counting:
            return
        items = _upload_items(change.get("new"))
        if items:
            data, name = bytes(items[0]["content"]), str(items[0].get("name") or role)
            self._set_layer(role, data, name)
        self._show_counts()

    def _show_counts(self) -> None:
        """Make each upload button's "(N)" the number of images (masks) the strip holds."""
        self._counting = True
        try:
            self.upload.value = tuple(_stand_in(i.label) for i in self._images)
            for role, button in (("mask", self.mask_upload), ("markup", self.markup_upload)):
                held = self._layers.get(role)
                button.value = (_stand_in(held.label),) if held is not None else ()
        finally:
            self._counting = False

    def _changed(self) -> None:
        self._show_error("")
        self._show_counts()
        self._redraw()
        if self._on_change is not None:
            self._on_change()

    def _show_error(self, message: str) -> None:
        self.error.value = f"<span>{html.escape(message)}</span>" if message else ""
        self.error.layout.display = None if message else "none"

    def _redraw(self) -> None:
        cards: list[W.Widget] = [self._thumb(i, img) for i, img in enumerate(self._images)]
        cards += [self._layer_thumb(role, img) for role, img in self._layers.items()]
        self.thumbs.children = tuple(cards)
        caps = get_edit_caps(self._model)
        show_mask = self.active and (caps is None or caps.mask)
        self.mask_upload.layout.display = None if show_mask else "none"
        show_markup = self.active and caps is not None and caps.markup
        self.markup_upload.layout.display = None if show_markup else "none"
        self.fidelity.layout.display = None if takes_fidelity(self._model) else "none"
        # Only "Add image" shows while the strip is empty: uploading a file starts an edit.
        for part in (self.title, self.thumbs):
            part.layout.display = None if self.active else "none"
        self.clear_button.layout.display = None if self.active else "none"

    def _thumb(self, index: int, img: ImageInput) -> W.VBox:
        remove = W.Button(description="✕", tooltip="Remove this image")
        remove.layout = W.Layout(width="28px", height="24px", padding="0")
        remove.add_class("cometnb-edit-remove")
        remove.on_click(lambda _b, i=index: self.remove(i))
        card = W.VBox([W.HTML(_thumb_html(img)), remove])
        card.add_class("cometnb-edit-ref")
        return card

    def _layer_thumb(self, role: str, img: ImageInput) -> W.VBox:
        remove = W.Button(description="✕", tooltip=f"Remove the {role}")
        remove.layout = W.Layout(width="28px", height="24px", padding="0")
        remove.add_class(f"cometnb-edit-remove-{role}")
        remove.on_click(lambda _b: self._set_layer(role, None, None))
        card = W.VBox([W.HTML(_thumb_html(img, role)), remove])
        card.add_class("cometnb-edit-ref")
        return card


def _upload_items(value: Any) -> list[dict[str, Any]]:
    """FileUpload values: a tuple of dicts (ipywidgets 8) or a name → dict mapping (7)."""
    if not value:
        return []
    if isinstance(value, Mapping):
        return [{"name": name, **dict(item)} for name, item in value.items()]
    return [dict(item) for item in value]


def _stand_in(label: str) -> dict[str, Any]:
    """An upload entry with no content: it only makes the button's count right."""
    return {
        "name": label,
        "type": "",
        "size": 0,
        "content": memoryview(b""),
        "last_modified": _EPOCH,
    }


def fully_transparent(img: ImageInput) -> bool:
    """True when every pixel of ``img`` is transparent (a mask that edits everywhere)."""
    if not img.has_alpha:
        return False
    try:
        opened, _format = _decode.open_image(img.data)
        with opened:
            alpha = opened.convert("RGBA").getchannel("A")
            return bool(alpha.getextrema() == (0, 0))
    except Exception:  # unreadable here means not known to be transparent
        return False


def _thumb_html(img: ImageInput, role: str = "") -> str:
    try:
        thumb, _mime = make_preview(img.data, THUMB_PX)
        src = _decode.data_uri(thumb)
    except Exception:  # a preview is a convenience; the label still says what it is
        src = ""
    caption = f"{role}: {img.label}" if role else img.label
    tip = html.escape(f"{caption} ({img.width}x{img.height})", quote=True)
    shown = html.escape(caption if len(caption) <= 14 else caption[:13] + "…")
    style = f"max-width:{THUMB_PX}px;max-height:{THUMB_PX}px"
    note = ""
    if role:  # a mask's or markup's transparent parts show as the checkerboard
        style += f";min-width:24px;min-height:24px;{CHECKERBOARD}"
        if role == "mask" and fully_transparent(img):
            style += f";width:{THUMB_PX}px;height:{THUMB_PX}px;object-fit:contain"
            note = (
                "<div class='cometnb-mask-note' style='font-size:11px;color:#8a5a00;"
                f"max-width:{THUMB_PX + 40}px'>{FULLY_TRANSPARENT}</div>"
            )
    pic = f"<img src='{src}' title='{tip}' style='{style}'/>"
    return (
        f"<div class='cometnb-edit-thumb'>{pic}<div style='font-size:11px'>{shown}</div>"
        f"{note}</div>"
    )
