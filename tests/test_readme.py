"""Every name README.md shows works as written: its Python and magic blocks run in order in a
fresh interpreter and IPython shell against the simulator (no key, as a newcomer's notebook),
and every ``cometnb.…`` name, magic, ``CometImg`` setting, method and keyword it mentions exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cometnb._core import settings as _settings

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("_readme_runner.py")


def test_readme_code_runs_as_written(tmp_path: Path) -> None:
    work = tmp_path / "notebook"
    work.mkdir()
    # The file the batch example names; it says the CSV needs a prompt column.
    (work / "products.csv").write_text(
        "id,prompt,size\nmug,a ceramic mug on linen,1024x1024\nlamp,a brass desk lamp,1024x1024\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (_settings.KEY_ENV, _settings.BASE_URL_ENV, "COMETNB_SIM_LATENCY")
    }
    env[_settings.HISTORY_ENV] = str(work / "cometnb-history")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(REPO / "README.md")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("README-RESULT ")]
    assert lines, f"the runner did not finish:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads(lines[-1].removeprefix("README-RESULT "))
    assert report["blocks"] >= 8  # the tour, edits, batch and spend examples
    assert report["failures"] == [], "\n\n".join(
        f"{f['code']}\n-> {f['error']}" for f in report["failures"]
    )
    # What the examples wrote, as written: the export beside the notebook, images in the history.
    assert (work / "foxes.html").is_file()
    assert len(list((work / "cometnb-history" / "images").iterdir())) >= 8
