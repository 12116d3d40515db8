"""The demo's working copies: made once, kept when the user changed them, refreshed otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from cometnb import _demo_work


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "notebooks"
    src.mkdir()
    (src / "01-quickstart.ipynb").write_text('{"cells": []}')
    (src / "02-compare.ipynb").write_text('{"cells": [1]}')
    (src / "build_notebooks.py").write_text("print('not a notebook')")
    return src


def test_only_notebooks_are_copied(tmp_path: Path) -> None:
    work = _demo_work.prepare(_source(tmp_path), tmp_path / "work")
    names = sorted(p.name for p in work.iterdir() if not p.name.startswith("."))
    assert names == ["01-quickstart.ipynb", "02-compare.ipynb"]


def test_a_copy_the_user_changed_is_kept_and_an_untouched_one_follows_upstream(
    tmp_path: Path,
) -> None:
    src = _source(tmp_path)
    work = _demo_work.prepare(src, tmp_path / "work")
    (work / "01-quickstart.ipynb").write_text('{"cells": ["my outputs"]}')
    (src / "01-quickstart.ipynb").write_text('{"cells": ["new upstream"]}')
    (src / "02-compare.ipynb").write_text('{"cells": ["new upstream 2"]}')
    (src / "03-panel.ipynb").write_text("{}")
    _demo_work.prepare(src, work)
    assert (work / "01-quickstart.ipynb").read_text() == '{"cells": ["my outputs"]}'
    assert (work / "02-compare.ipynb").read_text() == '{"cells": ["new upstream 2"]}'
    assert (work / "03-panel.ipynb").is_file()


def test_default_workdir_is_outside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_demo_work.WORKDIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "/data/home")
    assert _demo_work.default_workdir() == Path("/data/home/cometnb/demo")
    monkeypatch.setenv(_demo_work.WORKDIR_ENV, "~/my-demo")
    assert _demo_work.default_workdir() == Path("~/my-demo").expanduser()


def test_the_tracked_folder_itself_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path)
    with pytest.raises(ValueError, match="must not be the tracked"):
        _demo_work.prepare(src, src)
