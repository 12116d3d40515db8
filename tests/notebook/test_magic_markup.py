"""``%%cometimg --markup SRC`` (gpt-image-2.6) through a real InteractiveShell against the
simulator: the same sources as ``--mask``, the dry run naming the part, and every refusal
before the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _history_helpers import image_bytes
from _markup import markup_png
from conftest import FAKE_KEY
from IPython.core.error import UsageError

import cometnb
from cometnb._core.errors import ValidationError
from cometnb._core.generations import Generation, Grid
from cometnb.sim import SimServer


def _run(shell: Any, line: str, cell: str) -> Any:
    return shell.run_cell_magic("cometimg", line, cell)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "desk.png"
    path.write_bytes(image_bytes(256, 256, "PNG", (200, 180, 120)))
    return path


@pytest.fixture
def arrows(tmp_path: Path) -> Path:
    path = tmp_path / "arrows.png"
    path.write_bytes(markup_png(256))
    return path


def test_markup_from_a_file_a_variable_and_the_history(
    magic_shell: Any, sim: SimServer, photo: Path, arrows: Path
) -> None:
    gen = _run(magic_shell, f"-m gpt-image-2.6-flare --image {photo} --markup {arrows}", "red cup")
    assert isinstance(gen, Generation) and gen.ok
    assert [p["name"] for p in sim.requests[-1]["_parts"]] == ["image", "markup"]
    magic_shell.user_ns["notes"] = markup_png(1024, (0, 200, 0))
    # The result (1024²) as the input, annotations of the same size from a notebook value.
    second = _run(magic_shell, "-m gpt-image-2.6-sunburst --image @-1 --markup {notes}", "again")
    h = cometnb.history()
    rec = h.get(second.record_id)
    assert rec.parent == gen.record_id
    assert [(s.role, s.label) for s in rec.sources] == [("image", "@-1"), ("markup", "{notes}")]


def test_a_grid_of_markup_edits(
    magic_shell: Any, sim: SimServer, photo: Path, arrows: Path
) -> None:
    grid = _run(
        magic_shell,
        f"-m gpt-image-2.6-flare,gpt-image-2.6-sunburst -q low,medium --image {photo} "
        f"--markup {arrows}",
        "follow the arrows",
    )
    assert isinstance(grid, Grid) and len(grid.cells) == 4
    assert all([p["name"] for p in r["_parts"]] == ["image", "markup"] for r in sim.requests)


def test_dry_run_names_the_markup_part(
    magic_shell: Any,
    sim: SimServer,
    photo: Path,
    arrows: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = f"-m gpt-image-2.6-flare --image {photo} --markup {arrows} --dry-run"
    assert _run(magic_shell, line, "x") is None
    out = capsys.readouterr().out
    assert '"part": "markup"' in out and "markup-arrows.png" in out and "256x256" in out
    assert "base64" not in out and FAKE_KEY not in out
    assert sim.request_count == 0


def test_refusals_before_the_network(
    magic_shell: Any, sim: SimServer, photo: Path, arrows: Path
) -> None:
    with pytest.raises(UsageError, match="--markup needs an input image"):
        _run(magic_shell, f"-m gpt-image-2.6-flare --markup {arrows}", "x")
    with pytest.raises(ValidationError, match=r"markup applies to gpt-image-2\.6-flare and"):
        _run(magic_shell, f"-m gpt-image-2 --image {photo} --markup {arrows}", "x")
    magic_shell.user_ns["sky"] = cometnb.mask((256, 256), box=(0, 0, 256, 80))
    with pytest.raises(ValidationError, match="markup cannot be combined with a mask"):
        _run(
            magic_shell,
            f"-m gpt-image-2.6-flare --image {photo} --mask {{sky}} --markup {arrows}",
            "x",
        )
    magic_shell.user_ns["small"] = markup_png(64)
    with pytest.raises(ValidationError, match=r"markup \(\{small\}\) must be the same size"):
        _run(magic_shell, f"-m gpt-image-2.6-flare --image {photo} --markup {{small}}", "x")
    assert sim.request_count == 0
