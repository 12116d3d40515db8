"""``%%cometimg --image/--mask/--fidelity`` through a real InteractiveShell against the simulator:
every source form, grids of edits, and dry runs that show inputs by name and size only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from _history_helpers import image_bytes
from conftest import FAKE_KEY
from IPython.core.error import UsageError
from PIL import Image

import cometnb
from cometnb._core.errors import ValidationError
from cometnb._core.generations import Generation, Grid
from cometnb.sim import SimServer


def _run(shell: Any, line: str, cell: str) -> Any:
    return shell.run_cell_magic("cometimg", line, cell)


def _parts(sim: SimServer, index: int = -1) -> list[dict[str, Any]]:
    return list(sim.requests[index]["_parts"])


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "shoe.png"
    path.write_bytes(image_bytes(128, 128, "PNG", (30, 120, 200)))
    return path


def test_a_file_path(magic_shell: Any, sim: SimServer, photo: Path) -> None:
    gen = _run(magic_shell, f"-m gpt-image-1-mini --image {photo}", "the shoe, in red")
    assert isinstance(gen, Generation) and gen.ok
    assert [(p["name"], p["filename"]) for p in _parts(sim)] == [("image", "shoe.png")]
    assert cometnb.history()[-1].kind == "edit"


def test_at_minus_one_and_at_id(magic_shell: Any, sim: SimServer) -> None:
    first = _run(magic_shell, "-m gpt-image-1-mini", "a red fox")
    second = _run(magic_shell, "-m gpt-image-1-mini --image @-1", "the same fox at night")
    h = cometnb.history()
    assert h.get(second.record_id).parent == first.record_id
    third = _run(magic_shell, f"-m gpt-image-1-mini --image @{first.record_id}:0", "in snow")
    assert h.get(third.record_id).parent == first.record_id
    assert [r.id for r in h.lineage(h.get(second.record_id))] == [
        first.record_id,
        second.record_id,
    ]


def test_a_pil_image_variable_and_a_mask_variable(magic_shell: Any, sim: SimServer) -> None:
    magic_shell.user_ns["pic"] = Image.new("RGB", (256, 256), (200, 20, 20))
    magic_shell.user_ns["sky"] = cometnb.mask((256, 256), box=(0, 0, 256, 100))
    gen = _run(magic_shell, "-m gpt-image-1 --image {pic} --mask {sky} --fidelity high", "sky")
    assert gen.ok
    assert [p["name"] for p in _parts(sim)] == ["image", "mask"]
    assert sim.requests[-1]["input_fidelity"] == "high"
    rec = cometnb.history()[-1]
    assert [(s.role, s.label) for s in rec.sources] == [("image", "{pic}"), ("mask", "{sky}")]


def test_bytes_path_generation_and_record_variables(
    magic_shell: Any, sim: SimServer, photo: Path
) -> None:
    base = _run(magic_shell, "-m gpt-image-1-mini", "a kite")
    ns = magic_shell.user_ns
    ns.update(raw=photo.read_bytes(), p=photo, gen=base, rec=cometnb.history()[-1])
    line = (
        "-m gpt-image-2 --image {raw} --image {p} --image {gen} --image {rec} --image {gen.image}"
    )
    assert _run(magic_shell, line, "combine all five").ok
    parts = _parts(sim)
    assert [p["name"] for p in parts] == ["image[]"] * 5
    assert parts[0]["sha256"] == parts[1]["sha256"]
    assert parts[2]["sha256"] == parts[3]["sha256"] == parts[4]["sha256"]
    sources = cometnb.history()[-1].sources
    assert [s.record_id for s in sources] == [None, None, base.record_id, base.record_id,
                                              base.record_id]  # fmt: skip


def test_a_grid_of_edits(magic_shell: Any, sim: SimServer, photo: Path) -> None:
    grid = _run(
        magic_shell,
        f"-m gpt-image-1-mini -q low,high --each-line --image {photo}",
        "the shoe in red\nthe shoe in gold\nthe shoe in glass",
    )
    assert isinstance(grid, Grid) and len(grid) == 6 and all(g.ok for g in grid)
    assert sim.request_count == 6
    shas = {p["sha256"] for r in sim.requests for p in r["_parts"]}
    assert len(shas) == 1  # the same input in every cell
    assert sorted({r["quality"] for r in sim.requests}) == ["high", "low"]
    assert len(list((cometnb.history().path / "sources").iterdir())) == 1
    page = grid._repr_html_()
    assert page.count('class="cometnb-source"') == 1  # the shared input, once, above the grid
    assert "from shoe.png" in page or str(photo) in page


def test_dry_run_shows_parts_by_name_and_size(
    magic_shell: Any, sim: SimServer, photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    magic_shell.user_ns["m"] = cometnb.mask((128, 128), box=(0, 0, 64, 64))
    assert _run(magic_shell, f"-m gpt-image-1 --image {photo} --mask {{m}} --dry-run", "x") is None
    out = capsys.readouterr().out
    assert "/images/edits" in out and "shoe.png" in out and "128x128" in out and "mask" in out
    assert "image/png" in out and "input_fidelity" not in out
    assert "base64" not in out and "\\x89PNG" not in out and FAKE_KEY not in out
    assert sim.request_count == 0


def test_refusals_before_the_network(magic_shell: Any, sim: SimServer, photo: Path) -> None:
    with pytest.raises(ValidationError, match="input_fidelity applies to gpt-image-1"):
        _run(magic_shell, f"-m gpt-image-2 --image {photo} --fidelity high", "x")
    with pytest.raises(UsageError, match="--mask needs an input image"):
        _run(magic_shell, f"--mask {photo}", "x")
    with pytest.raises(ValidationError, match=r"image file nope\.png does not exist"):
        _run(magic_shell, "--image nope.png", "x")
    with pytest.raises(ValidationError, match="no variable 'ghost'"):
        _run(magic_shell, "--image {ghost}", "x")
    magic_shell.user_ns["shots"] = [photo]
    with pytest.raises(ValidationError, match=r"image source \{shots\[0\]\}: only a variable"):
        _run(magic_shell, "--image {shots[0]}", "x")
    small = cometnb.mask((64, 64), box=(0, 0, 8, 8))
    magic_shell.user_ns["small"] = small
    with pytest.raises(ValidationError, match=r"same size as the first image \(128x128\)"):
        _run(magic_shell, f"-m gpt-image-1 --image {photo} --mask {{small}}", "x")
    assert sim.request_count == 0


def test_an_image_option_that_resolves_to_nothing_is_refused() -> None:
    import argparse

    from cometnb._notebook.cell_options import edit_fields

    with pytest.raises(UsageError, match="an edit needs at least one"):
        edit_fields(argparse.Namespace(image=[], mask=None, fidelity=None), {}, None)
    assert edit_fields(argparse.Namespace(image=None, mask=None, fidelity=None), {}, None) == {}


def test_other_options_still_expand_braces(magic_shell: Any, sim: SimServer) -> None:
    magic_shell.user_ns["which"] = "gpt-image-1-mini"
    gen = _run(magic_shell, "-m {which}", "a plain generation")
    assert gen.model == "gpt-image-1-mini"
    with Image.open(io.BytesIO(gen.image.data)) as img:
        assert img.size == (1024, 1024)
