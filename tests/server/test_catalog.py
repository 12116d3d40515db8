"""Which histories the server may read: the walk under the root, its limits, symlinks and
``$COMETNB_HISTORY``, and ids that name nothing on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _seed_history import seed

from cometnb._server import catalog as catalog_module
from cometnb._server.catalog import Catalog, history_id


def _history(folder: Path, records: int = 1) -> Path:
    seed(folder, records)
    return folder


def _paths(cat: Catalog, refresh: bool = True) -> list[str]:
    return [h.path for h in cat.histories(refresh=refresh)]


def test_the_walk_finds_histories_down_to_three_levels(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _history(root / "cometnb-history")
    _history(root / "x" / "y" / "z" / "cometnb-history")
    _history(root / "x" / "y" / "z" / "w" / "cometnb-history")  # four levels: not looked at
    (root / "x" / "cometnb-history").mkdir(parents=True)  # no index yet: not a history
    assert _paths(Catalog(root, "")) == ["cometnb-history", "x/y/z/cometnb-history"]


@pytest.mark.parametrize(
    "skipped", [".git", ".ipynb_checkpoints", "node_modules", "site-packages", "__pycache__"]
)
def test_the_walk_skips_hidden_and_package_folders(tmp_path: Path, skipped: str) -> None:
    root = tmp_path / "root"
    _history(root / skipped / "cometnb-history")
    _history(root / skipped / "deeper" / "cometnb-history")
    _history(root / "kept" / "cometnb-history")
    assert _paths(Catalog(root, "")) == ["kept/cometnb-history"]


def test_the_walk_skips_virtualenvs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "env").mkdir(parents=True)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    _history(root / "env" / "lib" / "cometnb-history")
    assert _paths(Catalog(root, "")) == []


def test_symlinks(tmp_path: Path) -> None:
    """A symlinked folder is not walked into (no loops, no escape); a ``cometnb-history``
    link counts only when it resolves inside the root."""
    root = tmp_path / "root"
    outside = _history(tmp_path / "outside" / "cometnb-history")
    inside = _history(root / "data" / "real-history")
    (root / "a").mkdir(parents=True)
    os.symlink(outside, root / "a" / "cometnb-history")
    os.symlink(inside, root / "cometnb-history")
    os.symlink(tmp_path / "outside", root / "linked")
    os.symlink(root, root / "loop")
    cat = Catalog(root, "")
    found = cat.histories(refresh=True)
    assert [h.path for h in found] == ["data/real-history"]
    assert found[0].folder == inside.resolve()


def test_the_environment_history_may_be_anywhere(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _history(root / "cometnb-history")
    elsewhere = _history(tmp_path / "elsewhere" / "mine")
    cat = Catalog(root, str(elsewhere))
    assert _paths(cat) == [str(elsewhere.resolve()), "cometnb-history"]
    assert _paths(Catalog(root, str(tmp_path / "missing"))) == ["cometnb-history"]
    assert _paths(Catalog(root, str(root / "cometnb-history"))) == ["cometnb-history"]


def test_ids_are_opaque_and_stable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    folder = _history(root / "p" / "cometnb-history")
    first = Catalog(root, "").histories()[0]
    again = Catalog(root, "").histories()[0]  # another server, same folder
    assert first.id == again.id == history_id(folder.resolve())
    assert len(first.id) == 16 and "cometnb" not in first.id
    other = Catalog(root, "")
    assert other.find(first.id) == first
    assert other.find("0" * 16) is None


def test_a_new_history_is_found_when_asked_for(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _history(root / "cometnb-history")
    cat = Catalog(root, "")
    assert len(cat.histories()) == 1
    later = _history(root / "later" / "cometnb-history")
    assert _paths(cat, refresh=False) == ["cometnb-history"]  # a fresh walk is reused ...
    found = cat.find(history_id(later.resolve()))  # ... but an unknown id walks again
    assert found is not None and found.path == "later/cometnb-history"


def test_a_gone_history_is_forgotten(tmp_path: Path) -> None:
    root = tmp_path / "root"
    gone = _history(root / "a" / "cometnb-history")
    cat = Catalog(root, "")
    found = cat.histories()[0]
    assert cat.browser(found).revision().count == 1
    (gone / "index.sqlite3").unlink()
    assert cat.histories(refresh=True) == [] and cat.find(found.id) is None


def test_the_walk_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    for n in range(30):
        (root / f"d{n:02}" / "e").mkdir(parents=True)
    _history(root / "d29" / "e" / "cometnb-history")
    assert _paths(Catalog(root, "")) == ["d29/e/cometnb-history"]
    monkeypatch.setattr(catalog_module, "MAX_FOLDERS", 10)
    cat = Catalog(root, "")
    assert _paths(cat) == [] and cat.truncated
    monkeypatch.setattr(catalog_module, "MAX_FOLDERS", 5_000)
    monkeypatch.setattr(catalog_module, "MAX_SECONDS", 0.0)
    cat = Catalog(root, "")
    assert _paths(cat) == [] and cat.truncated
