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
