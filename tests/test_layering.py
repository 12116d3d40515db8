"""The core runs without a kernel: importing it loads neither IPython nor ipywidgets.

Each check runs in a fresh interpreter so modules imported by other tests cannot hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE_MODULES = [
    "cometnb",
    "cometnb._client.client",
    "cometnb._core.generations",
    "cometnb._core.model_registry",
    "cometnb._core.images",
    "cometnb.history",
    "cometnb._views",
    "cometnb.sim",
    "cometnb._server",  # the Jupyter server extension: a front end without a kernel
]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_load_frontends(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert not {m for m in loaded if m.split(".")[0] in ("IPython", "ipywidgets", "ipykernel")}


def test_core_works_end_to_end_without_frontends(tmp_path: object) -> None:
    """A whole generation through the simulator in a plain script never imports a frontend."""
    statement = (
        "from cometnb.sim import SimServer\n"
        "from cometnb import Client, History\n"
        "import tempfile\n"
        "with SimServer() as s:\n"
        "    c = Client(api_key='sk-layer-test-key-0123456789', base_url=s.base_url,"
        " history=History(tempfile.mkdtemp()))\n"
        "    g = c.generate('a layered cake', model='gpt-image-1-mini', size='1024x1024')\n"
        "    assert g.images and g.images[0].path.exists()\n"
    )
    loaded = _loaded_after(statement)
    assert not {m for m in loaded if m.split(".")[0] in ("IPython", "ipywidgets", "ipykernel")}


def test_import_cometnb_is_light() -> None:
    """`import cometnb` alone must not pull in httpx, Pillow or sqlite (they load on first use)."""
    loaded = _loaded_after("import cometnb")
    assert not {m for m in loaded if m.split(".")[0] in ("httpx", "PIL", "sqlite3")}


def test_public_submodules_load_on_first_use() -> None:
    """``import cometnb`` then ``cometnb.sim.use_if_keyless()`` works (as the README says),
    without ``import cometnb`` loading the simulator, the magic or the widgets up front."""
    public = {"cometnb.sim", "cometnb.magic", "cometnb.widget", "cometnb.demo"}
    assert not public & _loaded_after("import cometnb")
    loaded = _loaded_after("import cometnb\nassert callable(cometnb.sim.use_if_keyless)")
    assert "cometnb.sim" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("IPython", "ipywidgets", "httpx")}


def test_the_server_extension_hook_keeps_import_cometnb_light() -> None:
    """Jupyter asks ``cometnb._jupyter_server_extension_points()`` which module to load; the
    answer loads nothing (the server imports ``cometnb._server`` itself, and only it)."""
    loaded = _loaded_after("import cometnb\nprint(cometnb._jupyter_server_extension_points())")
    heavy = ("httpx", "PIL", "sqlite3", "jupyter_server", "tornado")
    assert not {m for m in loaded if m.split(".")[0] in heavy}
    assert "cometnb._server" not in loaded
