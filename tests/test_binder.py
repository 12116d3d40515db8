"""The Binder (repo2docker) configuration: its files agree with the package, and it installs.

The slow test does what repo2docker does, minus Docker: a fresh virtualenv (no system site
packages), ``pip install -r binder/requirements.txt``, then ``binder/postBuild`` from the
repository root; then the package, the magic and the widget extension must be usable. It uses
whatever index and wheel cache pip is configured with here, and nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

try:  # tomllib is 3.11+; the package supports 3.10, where tomli is the same parser
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"


def requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]
            names.add(name.lower().replace("_", "-"))
    return names


def test_binder_files_exist() -> None:
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    assert os.access(BINDER / "postBuild", os.X_OK), "repo2docker runs postBuild as a program"
    post = (BINDER / "postBuild").read_text()
    assert post.startswith("#!") and "pip install" in post


def test_binder_requirements_cover_the_package_and_the_demo() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = requirement_names(pyproject["project"]["dependencies"])
    wanted = requirement_names((BINDER / "requirements.txt").read_text().splitlines())
    assert runtime <= wanted, f"binder/requirements.txt lacks {runtime - wanted}"
    # Lab itself, widgets rendering in Lab, a kernel, and pandas for 04-history's DataFrame.
    assert {"jupyterlab", "jupyterlab-widgets", "ipykernel", "pandas"} <= wanted


def test_readme_badge_opens_the_quickstart_in_lab() -> None:
    readme = (REPO / "README.md").read_text()
    assert "mybinder.org/v2/gh/" in readme
    assert "urlpath=lab/tree/notebooks/01-quickstart.ipynb" in readme
    assert (REPO / "notebooks" / "01-quickstart.ipynb").is_file()


IMPORT_CHECK = """
import cometnb, cometnb.magic, cometnb.widget, cometnb.history, IPython, ipywidgets, pandas
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "cometnb")
assert "cometimg" in ip.magics_manager.magics["cell"], "no %%cometimg"
print("cometnb", cometnb.__version__, "ok")
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_binder_environment_installs_and_imports(tmp_path: Path) -> None:
    env_dir = tmp_path / "binder-venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    env["VIRTUAL_ENV"] = str(env_dir)

    def run(*cmd: str, cwd: Path = tmp_path) -> str:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    # A copy of the repo: the build must not write into the working tree.
    src = tmp_path / "repo"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(".venv", ".git", "*cache*", "cometnb-history", "_work"),
    )
    python = str(bin_dir / "python")
    run(python, "-m", "pip", "install", "-q", "-r", str(src / "binder" / "requirements.txt"))
    run("bash", str(src / "binder" / "postBuild"), cwd=src)
    assert "ok" in run(python, "-c", IMPORT_CHECK)
    site = run(python, "-c", "import cometnb; print(cometnb.__file__)")
    assert str(env_dir) in site, "cometnb was not installed into the Binder environment"
    # Widgets render in Lab only if ipywidgets' lab extension is installed and enabled.
    extensions = run(python, "-m", "jupyter", "labextension", "list")
    manager = [line for line in extensions.splitlines() if "jupyterlab-manager" in line]
    assert manager and "enabled" in manager[0], extensions
