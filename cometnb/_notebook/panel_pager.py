"""Paging for the panel's history list: only one page of rows is ever built.

A history of 1,000 records must stay as quick to browse as one of 10, so the browser builds
widgets (and thumbnails) for the visible page only; "Newer" / "Older" move a page at a time.
Rows keep their natural height (``flex: 0 0 auto``) inside a list that scrolls, instead of
being squeezed to fit its height.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W

__all__ = ["LIST_HEIGHT", "PAGE_SIZE", "ROW_FLEX", "Pager"]

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
