"""Make ``docs/quickstart.png``: the executed quickstart notebook, as JupyterLab shows it.

``python docs/screenshot_quickstart.py`` runs ``notebooks/01-quickstart.ipynb`` in keyless mode
(simulator, synthetic images) in a temp folder, opens the executed copy in JupyterLab in
headless Chromium (recipe: BROWSER_TESTING.md) and saves a screenshot. Needs Debian's
``chromium`` (``make chromium``) and the dev extras (playwright, nbclient).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from cometnb.demo import (
    free_port,
    keyless_env,
    lab_command,
    make_state_dirs,
    start_lab,
    stop_lab,
    wait_ready,
)

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "quickstart.png"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
TOKEN = "screenshot"
LAB_SETTINGS = {
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "notebook-extension/tracker": {"windowingMode": "none"},
}
KERNEL_IDLE = """() => { const k = window.jupyterapp?.shell.currentWidget?.sessionContext?.session
  ?.kernel; return k?.connectionStatus === 'connected' && k.status === 'idle'; }"""
# Scroll past the introduction to the first generated images.
FIRST_SHOWN = 6  # the "A first image" heading: then its cell, the image and the next cell


def execute(work: Path, env: dict[str, str]) -> None:
    path = work / "01-quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute(env=env)
    nbformat.write(nb, path)


def settings(home: Path) -> None:
    for name, value in LAB_SETTINGS.items():
        f = home / "jupyter" / "lab-settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))


def shoot(port: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1100}, device_scale_factor=1)
        page.goto(f"http://127.0.0.1:{port}/lab/tree/01-quickstart.ipynb?token={TOKEN}&reset")
        page.wait_for_selector(".jp-Notebook .jp-OutputArea-output img", timeout=60_000)
        with contextlib.suppress(Exception):  # a settled status bar; not essential
            page.wait_for_function(KERNEL_IDLE, timeout=30_000)
        page.keyboard.press("Control+b")  # hide the file browser: more room for the notebook
        page.wait_for_timeout(1000)
        page.locator(".jp-Notebook .jp-Cell").nth(FIRST_SHOWN).evaluate("e => e.scrollIntoView()")
        page.wait_for_timeout(500)
        page.screenshot(path=str(OUT))
        browser.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cometnb-shot-") as tmp:
        home = Path(tmp)
        work = home / "notebooks"
        shutil.copytree(REPO / "notebooks", work, ignore=shutil.ignore_patterns("cometnb-history"))
        env = keyless_env(os.environ, home)
        make_state_dirs(env)
        execute(work, env)
        settings(home)
        port = free_port()
        cmd = lab_command(work, port, TOKEN, open_browser=False, as_root=os.geteuid() == 0)
        cmd.append("--LabApp.expose_app_in_browser=True")
        log = home / "lab.log"
        with log.open("wb") as log_file:
            proc = start_lab(cmd, work, env, log_file)
            try:
                wait_ready(proc, port, TOKEN, 90, log)
                shoot(port)
            finally:
                stop_lab(proc)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
