"""The panel's spend line beside Generate: the estimate of what the controls would send
(updated as they change) and what this kernel session has spent; and the budget check a
click on Generate passes before anything is queued.

Two things are said before the click: when the quality is left to the API ("default" or
"auto") the estimate is its upper bound (the API may choose high), and when a session budget
is set and the estimate passes what is left, the line turns into a warning naming both.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from cometnb._core import settings as _settings
from cometnb._core.budget import check_before, session
from cometnb._core.generations import ImageRequest
from cometnb._core.prices import Cost, format_usd

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
        parts.append(html.escape(session.label))
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
        left = max(0.0, float(budget) - session.usd - session.reserved)
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
