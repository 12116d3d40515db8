"""``files.inside``: the one check that a file a record names stays in the history folder.

It has a fast path (no resolving) for plain ``images/<name>`` paths; these tests pin that the
fast path gives the same answers as resolving would, for the paths a record can hold.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cometnb._storage.files import inside


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "history"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(b"x")
    (tmp_path / "private.png").write_bytes(b"secret")
    return folder


def test_plain_paths_inside_are_returned_existing_or_not(root: Path) -> None:
    assert inside(root, "images/a.png") == root / "images" / "a.png"
    assert inside(root, "images/missing.png") == root / "images" / "missing.png"
    assert inside(root, "previews/none-yet.webp") == root / "previews" / "none-yet.webp"


@pytest.mark.parametrize(
    "named",
    ["../private.png", "images/../../private.png", "/etc/passwd", "", "images//../../x"],
)
def test_paths_that_leave_the_folder_get_none(root: Path, named: str) -> None:
    assert inside(root, named) is None


def test_not_a_string_gets_none(root: Path) -> None:
    assert inside(root, None) is None
    assert inside(root, 3) is None


def test_a_symlink_pointing_outside_gets_none(root: Path) -> None:
    os.symlink(root.parent / "private.png", root / "images" / "link.png")
    assert inside(root, "images/link.png") is None
    os.symlink(root.parent, root / "escape")
    assert inside(root, "escape/private.png") is None


def test_a_symlink_pointing_inside_is_followed(root: Path) -> None:
    os.symlink(root / "images" / "a.png", root / "images" / "alias.png")
    assert inside(root, "images/alias.png") == root / "images" / "alias.png"


def test_the_folder_itself_may_be_a_link(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "linked-history"
    os.symlink(root, link)
    assert inside(link, "images/a.png") == link / "images" / "a.png"
    assert inside(link, "../private.png") is None
