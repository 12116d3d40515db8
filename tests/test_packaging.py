"""A release as a user gets it: the wheel and sdist build, pass ``twine check``, carry the
license, and the installed wheel (not this checkout) loads as an extension and makes an image
without a key.

Offline by design (tests never leave loopback): the wheel is installed with ``--no-deps`` into
its own folder and run by this environment's interpreter, which has the dependencies. The full
fresh-virtualenv install (dependencies from the package index) is ``nox -s package``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SMOKE = """
import cometnb, sys
assert cometnb.__file__.startswith(sys.argv[1]), cometnb.__file__  # the wheel, not the checkout
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "cometnb")
shell.run_line_magic("cometimg_sim", "")
r = shell.run_cell("%%cometimg -m gpt-image-1-mini -q low --no-display -o g\\na lighthouse")
assert r.error_in_exec is None, r.error_in_exec
g = shell.user_ns["g"]
assert g.ok and g.synthetic and g.image.path.is_file()
print("keyless generation ok", g.image.width, g.image.height)
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_wheel_and_sdist_pass_twine_check(dist: Path) -> None:
    files = sorted(str(p) for p in dist.iterdir())
    assert len(files) == 2 and {Path(f).suffix for f in files} == {".gz", ".whl"}
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


def test_the_release_carries_the_license_and_no_tool_caches(dist: Path) -> None:
    wheel = next(dist.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in metadata and "python-dotenv" in metadata
    assert all(n.startswith(("cometnb/", "cometnb-")) for n in names)
    with tarfile.open(next(dist.glob("*.tar.gz"))) as tf:
        members = tf.getnames()
    root = members[0].split("/")[0]
    for wanted in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "noxfile.py"):
        assert f"{root}/{wanted}" in members
    assert not any("_cache" in m for m in members)


def test_the_installed_wheel_loads_and_generates_without_a_key(dist: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(next(dist.glob("*.whl"))),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", SMOKE, str(target)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "keyless generation ok 1024 1024" in done.stdout
    assert any((work / "cometnb-history" / "images").iterdir())


SERVER_CONFIG = "etc/jupyter/jupyter_server_config.d/cometnb.json"


def test_the_wheel_enables_the_server_extension_on_install(dist: Path) -> None:
    """The wheel carries the config that turns the server extension on, as data installed
    under the environment's prefix (where jupyter_server reads ``etc/jupyter``)."""
    wheel = next(dist.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        data = [n for n in zf.namelist() if n.endswith(SERVER_CONFIG)]
        assert data == [f"{wheel.name.split('-py3')[0]}.data/data/{SERVER_CONFIG}"]
        config = json.loads(zf.read(data[0]))
    assert config == {"ServerApp": {"jpserver_extensions": {"cometnb": True}}}
    with tarfile.open(next(dist.glob("*.tar.gz"))) as tf:
        assert any(
            m.endswith("jupyter-config/jupyter_server_config.d/cometnb.json") for m in tf.getnames()
        )


def test_the_server_extension_is_enabled_in_this_environment(tmp_path: Path) -> None:
    """``make .venv/.installed`` (an editable install) enables it too: ``jupyter server
    extension list`` shows cometnb enabled and importable, from the environment's config."""
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "user-config"), "NO_COLOR": "1"}
    env.pop("JUPYTER_CONFIG_PATH", None)
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == 0, out
    section = out.split(f"Config dir: {Path(sys.prefix) / 'etc' / 'jupyter'}")[1].split(
        "Config dir:"
    )[0]
    assert re.search(r"^\s+cometnb enabled$", section, re.M), out
    assert re.search(r"^\s+cometnb \S+ OK$", section, re.M), out


# --- the history sidebar: a prebuilt JupyterLab extension in the wheel ----------------------

LABEXT = "share/jupyter/labextensions/cometnb"


def test_the_wheel_carries_the_prebuilt_sidebar_and_the_sdist_its_sources(dist: Path) -> None:
    wheel = next(dist.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        data = f"{wheel.name.split('-py3')[0]}.data/data/{LABEXT}"
        package = json.loads(zf.read(f"{data}/package.json"))
        install = json.loads(zf.read(f"{data}/install.json"))
    assert package["name"] == "cometnb" and package["jupyterlab"]["_build"]["load"]
    assert f"{data}/{package['jupyterlab']['_build']['load']}" in names  # remoteEntry.<hash>.js
    assert f"{data}/static/style.js" in names
    assert install["packageManager"] == "python" and install["packageName"] == "cometnb"
    # The built assets are data, installed once: not also inside the Python package.
    assert not any(n.startswith("cometnb/labextension/") for n in names)
    with tarfile.open(next(dist.glob("*.tar.gz"))) as tf:
        members = tf.getnames()
    root = members[0].split("/")[0]
    for wanted in (
        "hatch_build.py",
        "labextension/package.json",
        "labextension/package-lock.json",
        "labextension/tsconfig.json",
        "labextension/src/index.ts",
        "cometnb/labextension/static/style.js",
    ):
        assert f"{root}/{wanted}" in members
    assert not any("node_modules" in m for m in members)


def _venv_without_node(tmp_path: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    """A fresh virtualenv holding the wheel (no index: its dependencies are this
    environment's, through a ``.pth`` line) and a PATH with no Node.js on it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "outer-deps.pth").write_text("\n".join(ours) + "\n")
    path = str(venv / "bin")
    assert shutil.which("node", path=path) is None and shutil.which("npm", path=path) is None
    env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
        "NO_COLOR": "1",
    }
    return python, env


def test_the_wheel_installs_both_extensions_where_there_is_no_node(
    dist: Path, tmp_path: Path
) -> None:
    python, env = _venv_without_node(tmp_path, next(dist.glob("*.whl")))
    prefix = python.parent.parent
    listed = _listing(python, "jupyterlab.labextensions", env)
    mine = listed.split(f"{prefix}/share/jupyter/labextensions")[1]
    assert re.search(r"^\s+cometnb v\S+ enabled OK \(python, cometnb\)$", mine, re.M), listed
    listed = _listing(python, "jupyter_server.extension.serverextension", env)
    section = listed.split(f"Config dir: {prefix}/etc/jupyter")[1]
    assert re.search(r"^\s+cometnb enabled$", section, re.M), listed
    assert re.search(r"^\s+cometnb \S+ OK$", section, re.M), listed


def _listing(python: Path, module: str, env: dict[str, str]) -> str:
    """``python -m <module> list`` (what ``jupyter … list`` runs), without colour codes."""
    done = subprocess.run(
        [python, "-m", module, "list"], capture_output=True, text=True, timeout=120, env=env
    )
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert done.returncode == 0, out
    return out


def _source_only(folder: str, names: list[str]) -> set[str]:
    """What a fresh clone has: no virtualenv, no npm tree, no built extension, no caches."""
    junk = {".git", ".venv", ".nox", "dist", "build", "node_modules", "__pycache__", "_work"}
    skip = {n for n in names if n in junk or n.endswith("_cache")}
    if Path(folder) == REPO / "cometnb":
        skip.add("labextension")  # the built assets
    if Path(folder) == REPO / "labextension":
        skip.add("lib")  # tsc's output
    return skip


def test_a_build_from_source_says_plainly_that_it_needs_node(tmp_path: Path) -> None:
    """A checkout without the built extension and a PATH without Node.js: the build stops
    with one plain sentence naming Node.js >= 20 (hatch_build.py), before npm is tried."""
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_source_only)
    assert not (src / "cometnb" / "labextension").exists()
    bin_dir = str(Path(sys.executable).parent)
    assert shutil.which("node", path=bin_dir) is None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path / "out"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": bin_dir, "HOME": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "needs Node.js >= 20 with npm; found no `node` on PATH" in done.stdout + done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_extension_version_follows_the_package() -> None:
    """``jupyter labextension list`` shows labextension/package.json's version: keep it the
    Python package's, so the two extensions of one release never disagree."""
    from cometnb import __version__

    package = json.loads((REPO / "labextension" / "package.json").read_text())
    assert package["version"] == __version__
