"""``%%cometimg`` in a real kernel: a notebook executed by nbclient against a local simulator.

The simulator makes photo-like images (``texture="photo"``: a 1024² PNG is about 3 MB), so the
saved notebook proves the outputs stay light: every inline image is a preview under 150 KB, the
live display handle ends as the only output of its cell (no duplicate ``execute_result``), the
originals are in the history, and the key is in no output and no file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY, assert_no_key_in_tree

from cometnb._core import settings as _settings
from cometnb.sim import SimServer

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MAX_PREVIEW_BYTES = 150_000
DATA_URI = re.compile(r"data:image/[a-z+]+;base64,([A-Za-z0-9+/=]+)")

MAGIC_CELLS = {
    "single": "%%cometimg -m gpt-image-1 -s 1024x1024\na harbour at dawn, {style}",
    "partial": "%%cometimg -m gpt-image-1 -s 1024x1024 --partial 2\na harbour at dusk",
    "grid": "%%cometimg -m gpt-image-1 -s 1024x1024,1536x1024 -q low -o g\na harbour at noon",
}


@pytest.fixture
def photo_sim() -> Iterator[SimServer]:
    with SimServer(texture="photo") as server:
        yield server


def build_notebook(base_url: str, history: Path) -> Any:
    new_code = nbformat.v4.new_code_cell
    cells = [
        new_code("%load_ext cometnb"),
        new_code(
            f"%config CometImg.base_url = {base_url!r}\n"
            f"%config CometImg.history_dir = {str(history)!r}\n"
            "style = 'long exposure'"
        ),
        *(new_code(source, metadata={"tags": [name]}) for name, source in MAGIC_CELLS.items()),
        new_code("print(type(_).__name__, type(g).__name__, len(g))"),
    ]
    return nbformat.v4.new_notebook(cells=cells)


def kernel_env(history: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (_settings.KEY_ENV, _settings.BASE_URL_ENV, _settings.HISTORY_ENV)
    }
    # The key reaches the kernel the way a user's would: the environment, never the notebook.
    env[_settings.KEY_ENV] = FAKE_KEY
    env[_settings.HISTORY_ENV] = str(history)
    return env


def images_in(output: dict[str, Any]) -> list[bytes]:
    html = output.get("data", {}).get("text/html", "")
    return [base64.b64decode(m) for m in DATA_URI.findall(html)]


def test_notebook_outputs_are_light_and_keyless(photo_sim: SimServer, tmp_path: Path) -> None:
    history = tmp_path / "history"
    nb = build_notebook(photo_sim.base_url, history)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=kernel_env(history))
    saved = tmp_path / "magic.ipynb"
    nbformat.write(nb, saved)

    cells = {c.metadata.get("tags", [None])[0]: c for c in nb.cells}
    expected_images = {"single": 1, "partial": 1, "grid": 2}
    for name, count in expected_images.items():
        outputs = cells[name].outputs
        kinds = [o["output_type"] for o in outputs]
        assert kinds == ["display_data"], f"{name}: {kinds} (the result must be shown once)"
        images = images_in(outputs[0])
        assert len(images) == count, name
        for data in images:
            assert len(data) < MAX_PREVIEW_BYTES, f"{name}: a {len(data)}-byte inline image"
        assert outputs[0]["data"]["text/plain"].startswith(("<Generation", "<Grid"))
    assert "cometnb-grid" in cells["grid"].outputs[0]["data"]["text/html"]
    assert "long exposure" in photo_sim.requests[0]["prompt"]
    assert photo_sim.requests[1]["stream"] is True

    (last,) = nb.cells[-1].outputs
    assert last["text"].strip() == "Grid Grid 2"

    originals = [p for p in history.rglob("*.png") if p.stat().st_size > 1_000_000]
    assert len(originals) >= 4, "the multi-megabyte originals are in the history"
    assert saved.stat().st_size < 1_000_000, "the notebook embeds more than previews"
    assert FAKE_KEY not in json.dumps(nb)
    assert_no_key_in_tree(tmp_path)


def test_kernel_interrupt_cancels_a_hanging_request(photo_sim: SimServer, tmp_path: Path) -> None:
    """The notebook's Interrupt button (SIGINT to the kernel) stops a cell stuck on a request."""
    from jupyter_client.manager import start_new_kernel

    history = tmp_path / "history"
    photo_sim.fault("hang", seconds=60)
    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env(history), cwd=str(tmp_path))
    try:
        kc.execute_interactive(
            f"%load_ext cometnb\n%config CometImg.base_url = {photo_sim.base_url!r}", timeout=60
        )
        msg_id = kc.execute("%%cometimg -m gpt-image-1\na harbour in fog")
        deadline = time.monotonic() + 30
        while photo_sim.request_count < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert photo_sim.request_count == 1
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        content = reply["content"]
        assert content["status"] == "error" and content["ename"] == "CancelledError"
        errors = []
        while True:
            msg = kc.get_iopub_msg(timeout=10)
            if msg["msg_type"] == "error":
                errors.append(msg["content"]["traceback"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert errors == [
            [
                "CancelledError: interrupted: the request was cancelled. "
                "If it had reached the server it may still be billed."
            ]
        ]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    from cometnb.history import History

    assert [r.status for r in History(history)] == ["cancelled"]
    assert_no_key_in_tree(tmp_path)
