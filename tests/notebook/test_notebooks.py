"""The demo notebooks: stripped in the repo, and every one runs top to bottom.

Each notebook runs with nbclient in a temp copy of ``notebooks/`` (so nothing is written into
the repository) with the history in a temp folder. Keyless runs must start the simulator by
themselves; one run with a fake key against a key-checking simulator proves the key never
reaches an output, a history file or an export.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY, assert_no_key_in_tree

from cometnb._core import settings as _settings

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = [
    "01-quickstart.ipynb",
    "02-compare.ipynb",
    "03-panel.ipynb",
    "04-history.ipynb",
    "05-edit.ipynb",
    "06-gpt-image-2.6.ipynb",
]
CELL_TIMEOUT_S = 120


def load(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def test_all_demo_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_valid(path: Path) -> None:
    nb = load(path)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["kernelspec"]["language"] == "python"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a demo notebook without code"
    for cell in code:
        assert cell.outputs == [], f"outputs committed in {path.name}: {cell.source[:60]!r}"
        assert cell.execution_count is None, f"execution count committed in {path.name}"
    assert "widgets" not in nb.metadata, "widget state committed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_goes_keyless(path: Path) -> None:
    first = next(c for c in load(path).cells if c.cell_type == "code")
    assert "cometnb.sim.use_if_keyless()" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_never_asks_for_the_key_in_a_cell(path: Path) -> None:
    """Binder is public: no cell may hold or prompt for a key (the prose explains how)."""
    for cell in load(path).cells:
        if cell.cell_type == "code":
            assert "%cometimg_key" not in cell.source  # it would block a headless run
            assert "api_key=" not in cell.source
            assert "sk-" not in cell.source


# The most one cell may spend with a real key: the 2.6 notebook's xhigh / high comparison,
# which says so and carries this as its --budget.
COSTLY_CELL_BUDGET = 1.10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_stays_cheap(path: Path) -> None:
    """With a real key every cell is billed: low quality and one image, except a cell that
    carries a --budget of at most COSTLY_CELL_BUDGET (refused, not sent, above it)."""
    cells = [c.source for c in load(path).cells if c.cell_type == "code"]
    defaults_low = any('CometImg.quality = "low"' in src for src in cells)
    for src in cells:
        if not src.startswith("%%cometimg"):
            continue
        head = src.splitlines()[0]
        assert " -n " not in head, head
        if "--dry-run" in head:
            continue
        budget = re.search(r"--budget (\S+)", head)
        if budget is not None:
            assert float(budget.group(1)) <= COSTLY_CELL_BUDGET, head
            continue
        quality = re.search(r"-q (\S+)", head)
        qualities = quality.group(1).split(",") if quality else []
        assert qualities[:1] == ["low"] or (not quality and defaults_low), head
        assert not {"high", "xhigh", "max", "auto"} & set(qualities), head


def test_notebooks_match_their_generator() -> None:
    build = runpy.run_path(str(NOTEBOOK_DIR / "build_notebooks.py"))
    for name, cells in build["NOTEBOOKS"].items():
        expected = build["render"](build["build"](name, cells))
        assert (NOTEBOOK_DIR / name).read_text(encoding="utf-8") == expected, (
            f"{name} differs from notebooks/build_notebooks.py: run that script"
        )


# --- what the notebooks rely on, checked fast and with a precise message -------------------

SUBMODULE_FIRST = """
import cometnb.history  # what %load_ext cometnb and cometnb.panel() do on the way
import cometnb
assert callable(cometnb.history), f"cometnb.history is {cometnb.history!r}, not the function"
print(len(cometnb.history()))
"""

SIMULATOR_SURVIVES_THE_MAGIC = """
import contextlib, io
from IPython.core.interactiveshell import InteractiveShell
import cometnb.sim
from cometnb._core import settings as _settings
ip = InteractiveShell.instance()
assert cometnb.sim.use_if_keyless(quiet=True) == "simulator"
url = _settings.resolve_base_url()
ip.run_line_magic("load_ext", "cometnb")
with contextlib.redirect_stdout(io.StringIO()):
    ip.run_cell_magic("cometimg", "--dry-run -m gpt-image-1-mini -q low", "a test")
now = _settings.resolve_base_url()
assert now == url, f"keyless mode pointed at {url}, but after %load_ext the magic uses {now}"
"""


# What the notebooks and the demo tell a keyless user: "run %cometimg_key" to switch.
KEY_LEAVES_THE_SIMULATOR = """
import getpass
from IPython.core.interactiveshell import InteractiveShell
import cometnb.sim
from cometnb._core import settings as _settings
ip = InteractiveShell.instance()
assert cometnb.sim.use_if_keyless(quiet=True) == "simulator"
ip.run_line_magic("load_ext", "cometnb")
getpass.getpass = lambda prompt="": "sk-cometnb-switch-test-0123456789"
ip.run_line_magic("cometimg_key", "")
now = _settings.resolve_base_url()
assert now == _settings.DEFAULT_BASE_URL, f"after %cometimg_key requests still go to {now}"
assert _settings.resolve_api_key() == "sk-cometnb-switch-test-0123456789"
"""


@pytest.mark.parametrize(
    "script",
    [SUBMODULE_FIRST, SIMULATOR_SURVIVES_THE_MAGIC, KEY_LEAVES_THE_SIMULATOR],
    ids=["history-callable-after-import", "simulator-survives-load-ext", "key-leaves-simulator"],
)
def test_notebook_prerequisite(script: str, tmp_path: Path) -> None:
    env = kernel_env(tmp_path / "history")
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = (done.stderr.strip().splitlines() or [""])[-1]
    assert done.returncode == 0, lines


def run_notebook(name: str, tmp_path: Path, env: dict[str, str]) -> Any:
    """Execute a temp copy of notebooks/NAME; return the executed notebook."""
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, work, ignore=shutil.ignore_patterns("cometnb-history", ".*"))
    nb = load(work / name)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    client.execute(env=env)  # raises CellExecutionError on the first failing cell
    return nb


def kernel_env(history: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without key or URL (conftest removed them), plus extra."""
    env = {
        k: v for k, v in os.environ.items() if k not in (_settings.KEY_ENV, _settings.BASE_URL_ENV)
    }
    env[_settings.HISTORY_ENV] = str(history)
    env.update(extra)
    return env


def outputs_text(nb: Any) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells]) + json.dumps(nb.metadata)


def all_outputs(nb: Any) -> list[dict[str, Any]]:
    return [out for cell in nb.cells for out in cell.get("outputs", [])]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_keyless(name: str, tmp_path: Path) -> None:
    history = tmp_path / "history"
    nb = run_notebook(name, tmp_path, kernel_env(history))
    outs = all_outputs(nb)
    assert not [o for o in outs if o.get("output_type") == "error"]
    text = outputs_text(nb)
    assert "synthetic" in text.lower(), "keyless run must say its images are synthetic"
    if name != "03-panel.ipynb":  # the panel generates only when clicked
        stored = [p for p in history.rglob("*") if p.suffix in (".png", ".jpeg", ".webp")]
        assert stored, "no image reached the history folder"
    leftovers = {p.name for p in (tmp_path / "notebooks").iterdir()}
    assert leftovers <= {p.name for p in NOTEBOOK_DIR.iterdir()} | {"cometnb-history"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_key_never_reaches_an_output(tmp_path: Path) -> None:
    """With a (fake) key the notebooks take the real-API path; the key must appear nowhere."""
    from cometnb.sim import SimServer

    history = tmp_path / "history"
    with SimServer(api_key=FAKE_KEY) as server:
        env = kernel_env(
            history,
            **{_settings.KEY_ENV: FAKE_KEY, _settings.BASE_URL_ENV: server.base_url},
        )
        nb = run_notebook("01-quickstart.ipynb", tmp_path, env)
        assert server.request_count >= 3, "the notebook did not reach the (fake) real API"
    assert FAKE_KEY not in outputs_text(nb)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "simulator" not in json.dumps(first.outputs).lower(), "a key was set: no simulator"
    assert_no_key_in_tree(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_edit_notebook_exports_only_what_it_made(tmp_path: Path) -> None:
    """05-edit's gallery holds this run's records, not a long history's (100 records oldest
    first made a 25,000 px page)."""
    from _seed_history import seed

    from cometnb._storage.folder import History

    history = tmp_path / "history"
    earlier = set(seed(history, 80))
    nb = run_notebook("05-edit.ipynb", tmp_path, kernel_env(history))
    assert not [o for o in all_outputs(nb) if o.get("output_type") == "error"]
    made = [r for r in History(history).records() if r.id not in earlier]
    assert 5 <= len(made) <= 10 and any(r.kind == "edit" for r in made)
    page = (history / "edits.html").read_text()
    assert page.count('<div class="rec">') == len(made)
    assert f"{len(made)} record(s)" in page
    assert not [rid for rid in earlier if rid in page], "the export holds earlier records"
