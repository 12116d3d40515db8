"""``nox``: the test suite on every Python from 3.10 to 3.13 found on this machine.

``make nox`` (or ``nox``) runs ``tests`` once per interpreter that is installed; a missing one
is skipped with a note, not a failure, so the target works on a machine with only 3.11. The
browser test needs Chromium and JupyterLab and is left to ``make test``.

    $ nox -s tests-3.10      # one interpreter
    $ nox -s build           # wheel + sdist, checked by twine
    $ nox -s package         # the wheel in a fresh virtualenv: %load_ext + a keyless image,
                             # and both Jupyter extensions enabled with no Node.js on PATH
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _expose_pyenv_versions() -> None:
    """With pyenv, ``python3.10`` is a shim that works only for the selected versions: select
    every installed one (for this run only) so nox finds each interpreter."""
    if os.environ.get("PYENV_VERSION") or not shutil.which("pyenv"):
        return
    found = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True)
    versions = [v.strip() for v in found.stdout.split() if v.strip()[:1].isdigit()]
    if versions:
        os.environ["PYENV_VERSION"] = ":".join(versions)


_expose_pyenv_versions()
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite without the real-browser test, in a fresh virtualenv per Python."""
    session.install("-e", ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--deselect",
        "tests/test_browser.py",
        "--deselect",
        "tests/test_browser_sidebar.py",
        *session.posargs,
    )


@nox.session
def build(session: nox.Session) -> None:
    """Build the wheel and sdist into dist/ and check their metadata with twine."""
    session.install("build", "twine")
    session.run("python", "-m", "build", "--outdir", "dist", ".")
    session.run("python", "-m", "twine", "check", "--strict", *_dist_files())


def _dist_files() -> list[str]:
    from pathlib import Path

    return sorted(str(p) for p in Path("dist").glob("cometnb-*") if p.suffix in (".whl", ".gz"))


SMOKE = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "cometnb")
shell.run_line_magic("cometimg_sim", "")
r = shell.run_cell("%%cometimg -m gpt-image-1-mini -q low --no-display -o g\\na lighthouse")
assert r.error_in_exec is None, r.error_in_exec
assert shell.user_ns["g"].ok and shell.user_ns["g"].synthetic
print("keyless generation in a fresh virtualenv: ok")
"""


@nox.session(python=PYTHONS)
def package(session: nox.Session) -> None:
    """Install the built wheel (dependencies from the index) into a fresh virtualenv, then
    load the extension and make an image without a key (the simulator)."""
    session.run("python", "-m", "pip", "install", "-q", "build")
    tmp = session.create_tmp()
    session.run("python", "-m", "build", "--wheel", "--outdir", tmp, ".")
    wheel = sorted(__import__("glob").glob(f"{tmp}/cometnb-*.whl"))[-1]
    session.install(wheel)
    session.chdir(tmp)
    session.run("python", "-c", SMOKE)
    _both_extensions_enabled(session)


def _both_extensions_enabled(session: nox.Session) -> None:
    """JupyterLab beside the wheel, and a PATH holding only this virtualenv (no Node.js):
    ``jupyter labextension list`` and ``jupyter server extension list`` show cometnb enabled."""
    session.install("jupyterlab>=4.2")
    bin_dir = str(session.bin)
    if shutil.which("node", path=bin_dir):
        session.error(f"node is in {bin_dir}: this check needs a PATH without it")
    env = {"PATH": bin_dir, "NO_COLOR": "1"}
    for command, wanted in (
        (["labextension", "list"], r"cometnb v\S+ enabled OK \(python, cometnb\)"),
        (["server", "extension", "list"], r"cometnb \S+ OK"),
    ):
        out = session.run("jupyter", *command, env=env, silent=True, external=True) or ""
        if not re.search(wanted, re.sub(r"\x1b\[[0-9;]*m", "", str(out))):
            session.error(f"cometnb is not enabled in `jupyter {' '.join(command)}`:\n{out}")
        print(f"jupyter {' '.join(command)}: cometnb enabled, without Node.js on PATH")
