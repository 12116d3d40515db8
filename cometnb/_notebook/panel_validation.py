"""Live validation for the panel's form: errors appear as controls change, not after a click.

Every change of a control re-checks the request the form describes (the same
:func:`~cometnb._core.generations.ImageRequest.validate` the client runs) and shows the first
problem next to the control at fault; fixing the value clears it at once, and Generate stays
disabled while the form is invalid. Two things are not "invalid" while typing, only not ready:
an empty prompt and a missing key. They are reported when Generate is clicked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cometnb._core.errors import ValidationError
from cometnb._core.generations import ImageRequest

if TYPE_CHECKING:
    from cometnb._notebook.panel_form import RequestForm

__all__ = ["LiveValidation"]

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
            *("prompt", "model", "size", "quality", "n", "output_format"),
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
        from cometnb._core.model_registry import CAPABILITIES, KNOWN_MODELS
        from cometnb._core.text import model_typo_warning

        model = str(self.form.model.value).strip()
        warning = None if model in CAPABILITIES else model_typo_warning(model, KNOWN_MODELS)
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
