"""The panel's spend line beside Generate: the estimate of what the controls would send
(updated as they change) and what this kernel session has spent; and the budget check a
click on Generate passes before anything is queued."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from cometnb._core import settings as _settings
from cometnb._core.budget import check_before, session
from cometnb._core.cost import Cost
from cometnb._core.models import ImageRequest

if TYPE_CHECKING:
    from cometnb._notebook.panel_form import RequestForm

__all__ = ["SpendLine"]

# Controls whose value changes the price (the others, such as tags or the key, do not).
_PRICED = ("prompt", "model", "size", "quality", "n", "partial_images", "output_format")


class SpendLine:
    """``≈ $0.05 · $0.158 this session`` beside Generate.

    Example::

        >>> line = SpendLine(form)  # doctest: +SKIP
        >>> line.widget.value  # doctest: +SKIP
        '<span …>≈ $0.05</span> · $0.000 this session'
    """

    def __init__(self, form: RequestForm) -> None:
        self.form = form
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
        return ImageRequest(prompt, model, **self.form.values()).with_session_defaults()

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
        parts.append(html.escape(session.label))
        budget = _settings.active().budget
        if budget is not None:
            parts.append(f"budget ${budget:,.2f}")
        self.widget.value = '<span style="opacity:.8">' + " · ".join(parts) + "</span>"

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
