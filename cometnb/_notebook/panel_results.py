"""The panel's results: one card per generation (newest first), each with its own Edit button.

Each result is a small box of the card (the shared HTML view) and, for a result with images,
an "Edit" button under it that loads that result into the edit strip. The box of buttons keeps
the ``cometnb-result-actions`` class (and the button ``cometnb-edit-result``), so a page can
find the Edit of the first (newest) card as ``.cometnb-result-actions .cometnb-edit-result``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ipywidgets as W

if TYPE_CHECKING:
    from cometnb._core.generations import Generation

__all__ = ["ResultGallery"]


class ResultGallery(W.Box):  # type: ignore[misc]  # ipywidgets ships no type hints
    """The result cards, a wrapping row (CSS class ``cometnb-gallery``).

    ``on_edit(gen)`` runs when a card's Edit is clicked; ``wrap`` guards a callback (the panel
    turns an exception into one short line). ``edit_buttons`` lists the buttons, newest first.
    """

    def __init__(
        self,
        on_edit: Callable[[Generation], None],
        wrap: Callable[[Callable[[object], object]], Callable[[object], None]],
    ) -> None:
        super().__init__([], layout=W.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.add_class("cometnb-gallery")
        self._on_edit, self._wrap = on_edit, wrap
        self.cards: list[W.VBox] = []
        self.edit_buttons: list[W.Button] = []

    @property
    def value(self) -> str:
        """The cards' HTML, newest first (what is shown, for tests and plain-text checks)."""
        return "".join(card.children[0].value for card in self.cards)

    def show(self, newest_first: Sequence[Generation]) -> None:
        """Replace the cards with these results (newest first)."""
        self.cards, self.edit_buttons = [], []
        for gen in newest_first:
            self.cards.append(self._card(gen))
        self.children = tuple(self.cards)

    def _card(self, gen: Generation) -> W.VBox:
        from cometnb._views.cards import generation_html

        parts: list[W.Widget] = [W.HTML(generation_html(gen))]
        if gen.images:
            button = W.Button(description="Edit", icon="pencil", tooltip="Edit this result")
            button.layout.width = "90px"
            button.add_class("cometnb-edit-result")
            button.on_click(self._wrap(functools.partial(_edit, self._on_edit, gen)))
            actions = W.HBox([button])
            actions.add_class("cometnb-result-actions")
            parts.append(actions)
            self.edit_buttons.append(button)
        card = W.VBox(parts, layout=W.Layout(margin="0 8px 8px 0"))
        card.add_class("cometnb-result")
        return card


def _edit(on_edit: Callable[[Generation], None], gen: Generation, _button: object) -> None:
    on_edit(gen)  # bound per card, so each button edits its own result
