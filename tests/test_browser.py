"""End to end in a real browser: JupyterLab on loopback, driven by headless Chromium.

A notebook starts the simulator inside the kernel and shows ``cometnb.panel()``; the browser
types a prompt, picks a model, clicks Generate and sees the image, then compares two history
entries, then clicks Edit on the newest result, types a new prompt, clicks Generate and sees
the edited result with its source beside it. The run saves a screenshot of the panel beside
its notebook; with ``COMETNB_UPDATE_SCREENSHOTS=1`` it also replaces ``docs/panel.png`` (the
README's), so an ordinary ``make test`` leaves the checkout untouched. Recipe and pitfalls:
``BROWSER_TESTING.md`` (server flags, kernel-ready check, Run All menu ids, settings files).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:  # the only reason to skip: `make chromium` installs it
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "panel.png"
TOKEN = "cometnb-browser-test"
ARGS = [
    "--no-sandbox",  # required as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
# The kernel starts the simulator itself (no key anywhere: a placeholder session key).
SETUP = """import cometnb
from cometnb._core import settings as _settings
from cometnb.sim import SimServer
sim = SimServer(latency=0.3)
sim.start()
_settings.active().base_url = sim.base_url
_settings.set_session_key("sim-placeholder-key")"""
PANEL = "p = cometnb.panel()\np"
# The toolbar's idle indicator flashes 'idle' before the kernel exists; ask the app instead.
KERNEL_IDLE = """() => {
    const k = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
    return k?.connectionStatus === 'connected' && k.status === 'idle'; }"""
LAB_SETTINGS = {
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "notebook-extension/tracker": {"autoStartDefaultKernel": True, "windowingMode": "none"},
}
WAIT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(PANEL)]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, str(path))


def _kernel_env(home: Path) -> dict[str, str]:
    """Jupyter state in ``home``; the kernel inherits it: temp history, no key, no API URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("COMETAPI_KEY", "COMETAPI_BASE_URL")}
    env.update(
        JUPYTER_CONFIG_DIR=f"{home}/cfg",
        JUPYTER_DATA_DIR=f"{home}/data",
        JUPYTER_RUNTIME_DIR=f"{home}/rt",
        IPYTHONDIR=f"{home}/ipy",
        JUPYTERLAB_SETTINGS_DIR=f"{home}/settings",
        JUPYTERLAB_WORKSPACES_DIR=f"{home}/ws",
        COMETNB_HISTORY=f"{home}/history",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # `timeout` forwards SIGTERM; jupyter shuts its kernels down
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _processes_using(home: Path) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or ())
        if str(home) in cmd:
            found.append(cmd)
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("jhome")
    for name, value in LAB_SETTINGS.items():
        f = h / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    _write_notebook(h / "panel.ipynb")
    return h


@pytest.fixture(scope="module")
def lab(home: Path) -> Iterator[str]:
    port = _free_port()
    cmd = [
        *("timeout", "300"),  # bounds the server's life even if pytest is killed
        *(sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root"),
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={home}",
        "--LabApp.news_url=None",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(home / "server.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=home, env=_kernel_env(home), stdout=log, stderr=log)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/api/status?token={TOKEN}", home)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        leftovers = _processes_using(home)
        assert not leftovers, f"processes left behind: {leftovers}"


def _wait_ready(proc: subprocess.Popen[bytes], url: str, home: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("jupyter lab exited:\n" + (home / "server.log").read_text())
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: listening
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("jupyter lab did not start:\n" + (home / "server.log").read_text())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _open_notebook(browser: Any, lab: str) -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto(f"{lab}/lab/tree/panel.ipynb?token={TOKEN}&reset", timeout=60_000)
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    page.click(".lm-MenuBar-item:has-text('Run')")  # Lab has no default Run All shortcut
    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
    page.wait_for_selector(".cometnb-panel .cometnb-generate", timeout=60_000)
    return page


def _generate(page: Any, prompt: str, model: str, count: int) -> None:
    page.fill(".cometnb-panel .cometnb-prompt textarea", prompt)
    page.fill(".cometnb-panel .cometnb-model input", model)
    page.click(".cometnb-panel .cometnb-generate")
    page.locator(".cometnb-gallery .cometnb-card, .cometnb-gallery img").first.wait_for(
        timeout=WAIT_MS
    )
    page.wait_for_function(
        f"""() => document.querySelectorAll('.cometnb-panel .cometnb-gallery img').length >= {count}
                 && document.querySelector('.cometnb-panel .cometnb-generate')
                        .textContent.includes('Generate')""",
        timeout=WAIT_MS,
    )


def _edit_the_newest_result(page: Any) -> None:
    """Edit on the newest card, a new prompt, Generate: the edit shows its source beside it."""
    page.click(".cometnb-panel .cometnb-result-actions .cometnb-edit-result >> nth=0")
    page.locator(".cometnb-panel .cometnb-edit-strip .cometnb-edit-ref img").first.wait_for(
        timeout=WAIT_MS
    )
    page.fill(".cometnb-panel .cometnb-prompt textarea", "the same fox, at night")
    page.click(".cometnb-panel .cometnb-generate")
    sources = page.locator(".cometnb-panel .cometnb-gallery .cometnb-sources img")
    sources.first.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        """() => document.querySelectorAll('.cometnb-panel .cometnb-gallery .cometnb-card')
                 .length >= 3""",
        timeout=WAIT_MS,
    )
    newest = page.locator(".cometnb-panel .cometnb-gallery .cometnb-card").first
    text = newest.inner_text()
    assert "the same fox, at night" in text and "from" in text
    assert newest.locator(".cometnb-sources img").count() == 1
    assert (newest.locator(".cometnb-sources img").get_attribute("src") or "").startswith(
        "data:image/"
    )


def _screenshot(page: Any, path: Path) -> None:
    """The whole panel: a viewport tall enough that the notebook needs no scrolling."""
    height = page.evaluate("document.querySelector('.cometnb-panel').scrollHeight")
    page.set_viewport_size({"width": 1200, "height": int(height) + 400})
    panel = page.locator(".cometnb-panel")
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(path), animations="disabled")
    if os.environ.get("COMETNB_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.write_bytes(path.read_bytes())


def test_panel_generates_and_compares_in_jupyterlab(lab: str, browser: Any, home: Path) -> None:
    page = _open_notebook(browser, lab)
    try:
        _generate(page, "a lighthouse at dusk, oil painting", "gpt-image-1-mini", 1)
        gallery = page.inner_text(".cometnb-panel .cometnb-gallery")
        assert "a lighthouse at dusk" in gallery
        src = page.get_attribute(".cometnb-panel .cometnb-gallery img", "src") or ""
        assert src.startswith("data:image/")
        assert "synthetic" in page.inner_text(".cometnb-panel .cometnb-message")

        page.select_option(".cometnb-panel .cometnb-quality select", "low")
        _generate(page, "a red fox in fresh snow", "gpt-image-1", 2)

        entries = page.locator(".cometnb-history .cometnb-history-entry")
        entries.nth(1).wait_for(timeout=WAIT_MS)
        assert entries.count() == 2
        assert "a red fox in fresh snow" in entries.nth(0).inner_text()  # newest first
        for i in (0, 1):
            entries.nth(i).locator(".cometnb-select input[type=checkbox]").check()
        page.click(".cometnb-panel .cometnb-compare-button:not([disabled])")
        compare = page.locator(".cometnb-panel .cometnb-compare img")
        compare.nth(1).wait_for(timeout=WAIT_MS)
        text = page.inner_text(".cometnb-panel .cometnb-compare")
        assert "a red fox in fresh snow" in text and "a lighthouse at dusk" in text

        _edit_the_newest_result(page)

        shot = home / "panel.png"
        _screenshot(page, shot)
        assert shot.stat().st_size > 10_000
    finally:
        page.close()
    records = (home / "history").rglob("*")
    assert any(p.suffix in (".png", ".jpeg", ".jpg", ".webp") for p in records)
