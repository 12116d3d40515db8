"""The history list's pager: one page of rows is built at a time, Newer/Older move by a page."""

from __future__ import annotations

from cometnb._notebook.panel_history import Pager


def test_pages_cover_the_list_and_buttons_follow_the_bounds() -> None:
    moves: list[int] = []
    pager = Pager(on_change=lambda: moves.append(pager.page), page_size=20)
    pager.set_total(1000)
    assert pager.pages == 50 and pager.window() == range(0, 20)
    assert pager.newer_button.disabled and not pager.older_button.disabled
    assert pager.label.value == "1–20 of 1,000"
    pager.older_button.click()
    assert pager.window() == range(20, 40) and moves == [1]
    pager.move(100)
    assert pager.window() == range(980, 1000) and pager.older_button.disabled
    pager.older_button.click()  # already on the last page: nothing happens
    assert moves == [1, 49]


def test_shrinking_list_keeps_a_valid_page_and_reset_returns_to_newest() -> None:
    pager = Pager(on_change=lambda: None, page_size=10)
    pager.set_total(95)
    pager.move(9)
    assert pager.window() == range(90, 95)
    pager.set_total(31)
    assert pager.page == 3 and pager.window() == range(30, 31)
    pager.reset()
    assert pager.window() == range(0, 10) and pager.newer_button.disabled


def test_one_page_hides_the_pager_and_empty_says_so() -> None:
    pager = Pager(on_change=lambda: None, page_size=20)
    pager.set_total(0)
    assert pager.label.value == "no records" and pager.window() == range(0, 0)
    assert pager.box.layout.display == "none"
    pager.set_total(21)
    assert pager.box.layout.display is None
