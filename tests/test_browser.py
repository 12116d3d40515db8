"""End to end in a real browser: JupyterLab (and Voila) on loopback, driven by headless Chromium.

A notebook starts the simulator inside the kernel and shows ``cometnb.panel()``; the browser
types a prompt, picks a model, clicks Generate and sees the image, then compares two history
entries, then clicks Edit on the newest result, types a new prompt, clicks Generate and sees
the edited result with its source beside it. A second notebook opens the panel on a realistic
history (60 records, mixed ok / error / cancelled, long prompts): rows keep their height and
show their prompt, the list scrolls and pages, validation follows the controls, and export
offers a download link. The runs save screenshots beside their notebooks; with
``COMETNB_UPDATE_SCREENSHOTS=1`` they also replace ``docs/panel.png`` (Lab) and
``docs/panel-voila.png`` (the README's), so an ordinary ``make test`` leaves the checkout
untouched. Recipe and pitfalls:
``BROWSER_TESTING.md`` (server flags, kernel-ready check, Run All menu ids, settings files).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
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
from _seed_history import seed

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:  # the only reason to skip: `make chromium` installs it
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "panel.png"
VOILA_SCREENSHOT = REPO / "docs" / "panel-voila.png"
SEEDED = 200  # records in the realistic history (failures, edits with lineage, 6 models)
SHOTS = Path(os.environ.get("COMETNB_SHOTS", "")) if os.environ.get("COMETNB_SHOTS") else None
PAGE_ROWS = 20  # rows the panel builds at a time (panel_pager.PAGE_SIZE)
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
_settings.set_session_key("sim-placeholder-key-for-tests")"""
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


def _write_notebook(path: Path, setup: str = SETUP) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(PANEL)]
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
    seed(h / "seeded", SEEDED)
    seeded_setup = SETUP + f"\n_settings.active().history_dir = {str(h / 'seeded')!r}"
    _write_notebook(h / "history.ipynb", seeded_setup)
    return h


@contextlib.contextmanager
def serving_lab(home: Path, token: str = TOKEN, env: dict[str, str] | None = None) -> Iterator[str]:
    """JupyterLab on a free loopback port with its state in ``home`` (the recipe of
    BROWSER_TESTING.md), stopped on exit; yields its base URL. Every browser test's Lab."""
    port = _free_port()
    cmd = [
        *("timeout", "300"),  # bounds the server's life even if pytest is killed
        *(sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root"),
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={home}",
        "--LabApp.news_url=None",
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(home / "server.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=home, env=env or _kernel_env(home), stdout=log, stderr=log)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/api/status?token={token}", home)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        leftovers = _processes_using(home)
        assert not leftovers, f"processes left behind: {leftovers}"


@pytest.fixture(scope="module")
def lab(home: Path) -> Iterator[str]:
    with serving_lab(home) as url:
        yield url


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


def _open_notebook(browser: Any, lab: str, name: str = "panel.ipynb") -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto(f"{lab}/lab/tree/{name}?token={TOKEN}&reset", timeout=60_000)
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
    # The Edit button sits on the newest result card itself (under its picture).
    page.click(
        ".cometnb-panel .cometnb-gallery .cometnb-result .cometnb-result-actions"
        " .cometnb-edit-result >> nth=0"
    )
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


def _screenshot(page: Any, path: Path, docs: Path | None = None) -> None:
    """The whole panel: a viewport tall enough that the notebook needs no scrolling."""
    height = page.evaluate("document.querySelector('.cometnb-panel').scrollHeight")
    page.set_viewport_size({"width": 1200, "height": int(height) + 400})
    panel = page.locator(".cometnb-panel")
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(path), animations="disabled")
    if docs is not None and os.environ.get("COMETNB_UPDATE_SCREENSHOTS") == "1":
        docs.write_bytes(path.read_bytes())


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
        _screenshot(page, shot)  # docs/panel.png shows the realistic history instead
        assert shot.stat().st_size > 10_000
    finally:
        page.close()
    records = (home / "history").rglob("*")
    assert any(p.suffix in (".png", ".jpeg", ".jpg", ".webp") for p in records)


# --- a realistic history ----------------------------------------------------------------------

ROW_BOXES = """() => [
    ...document.querySelectorAll('.cometnb-history .cometnb-history-entry')].map(e => {
        const p = e.querySelector('.cometnb-history-prompt');
        const r = p.getBoundingClientRect();
        return {height: e.getBoundingClientRect().height, promptHeight: r.height,
                promptWidth: r.width, prompt: p.innerText}; })"""


def _check_rows(page: Any) -> list[dict[str, Any]]:
    """Every built row keeps its height and shows its prompt (the defect squeezed them)."""
    page.wait_for_function(
        f"document.querySelectorAll('.cometnb-history .cometnb-history-entry').length"
        f" === {PAGE_ROWS}",
        timeout=WAIT_MS,
    )
    rows: list[dict[str, Any]] = page.evaluate(ROW_BOXES)
    assert len(rows) == PAGE_ROWS
    for row in rows:
        assert row["height"] >= 64, rows  # a 64 px thumbnail plus padding, never squeezed
        assert row["promptHeight"] >= 14 and row["promptWidth"] >= 200, row
        assert len(row["prompt"]) >= 20, row
    heights = [row["height"] for row in rows]
    assert max(heights) <= 130, heights  # dense: a failure's reason adds one line, no more
    scroll = page.evaluate(
        "(() => { const l = document.querySelector('.cometnb-history-list');"
        " return [l.scrollHeight, l.clientHeight]; })()"
    )
    assert scroll[0] > scroll[1] + 100, scroll  # the list scrolls instead of squeezing
    return rows


CLIPPED = """() => [...document.querySelectorAll('.cometnb-form .cometnb-field')]
    .filter(f => f.offsetParent !== null)
    .map(f => { const box = f.getBoundingClientRect();
                const control = f.children[1].getBoundingClientRect();
                return {field: f.innerText.split('\\n')[0], over: control.right - box.right}; })
    .filter(x => x.over > 0.5)"""


def _check_controls_fit(page: Any) -> None:
    """No control sticks out of (and is clipped by) its field box (Model, n, Tags, ...)."""
    assert page.evaluate(CLIPPED) == []


def _check_live_validation(page: Any) -> None:
    size = page.locator(".cometnb-panel .cometnb-size input")
    error = page.locator(".cometnb-panel .cometnb-field:has(.cometnb-size) .cometnb-error")
    generate = page.locator(".cometnb-panel .cometnb-generate")
    size.fill("800x600")
    error.wait_for(state="visible", timeout=WAIT_MS)  # before any click
    assert "800x600" in error.inner_text()
    # The field widens for its message (a line beside the control, not one word a line);
    # each widget update is its own message, so wait for the layout rather than read it once.
    page.wait_for_function(
        """() => { const e = document.querySelector(
                     '.cometnb-panel .cometnb-field:has(.cometnb-size) .cometnb-error');
                   return e && e.getBoundingClientRect().width >= 250; }""",
        timeout=WAIT_MS,
    )
    page.wait_for_function(
        "document.querySelector('.cometnb-panel .cometnb-generate').disabled", timeout=WAIT_MS
    )
    size.fill("1024x1024")
    error.wait_for(state="hidden", timeout=WAIT_MS)
    page.wait_for_function(
        "!document.querySelector('.cometnb-panel .cometnb-generate').disabled", timeout=WAIT_MS
    )
    assert generate.is_enabled()
    _check_hint_widens(page)


def _check_hint_widens(page: Any) -> None:
    """The model typo note widens its field like an error (it wrapped 2-4 words a line)."""
    model = page.locator(".cometnb-panel .cometnb-model input")
    was = model.input_value()
    model.fill("gpt-imgae-2")
    hint = page.locator(".cometnb-panel .cometnb-field:has(.cometnb-model) .cometnb-error")
    # The field may already carry a note (a retired model carried from a row says so): wait
    # for the typo's own note rather than for any visible one.
    page.wait_for_function(
        """() => { const e = document.querySelector(
                     '.cometnb-panel .cometnb-field:has(.cometnb-model) .cometnb-error');
                   return e && e.innerText.includes('Did you mean gpt-image-2?'); }""",
        timeout=WAIT_MS,
    )
    assert "Did you mean gpt-image-2?" in hint.inner_text()
    page.wait_for_function(
        """() => { const e = document.querySelector(
                     '.cometnb-panel .cometnb-field:has(.cometnb-model) .cometnb-error');
                   return e && e.getBoundingClientRect().width >= 250; }""",
        timeout=WAIT_MS,
    )
    model.fill(was)
    page.wait_for_function(
        """() => { const e = document.querySelector(
                     '.cometnb-panel .cometnb-field:has(.cometnb-model) .cometnb-error');
                   return !e || !e.offsetParent || !e.innerText.includes('Did you mean'); }""",
        timeout=WAIT_MS,
    )


def _check_export_link(page: Any) -> None:
    search = page.locator(".cometnb-history input[placeholder='search prompts (as you type)']")
    search.fill("(take 19")  # no Enter: the search runs once typing pauses (11 records)
    page.wait_for_function(
        "document.querySelectorAll('.cometnb-history .cometnb-history-entry').length < 20",
        timeout=WAIT_MS,
    )
    shown = page.locator(".cometnb-history .cometnb-history-entry").count()
    page.click(".cometnb-history button:has-text('Export zip')")
    link = page.locator(".cometnb-history-status a.cometnb-download")
    link.wait_for(timeout=WAIT_MS)
    href = link.get_attribute("href") or ""
    assert href.startswith("data:application/zip;base64,")
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))) as zf:
        lines = zf.read("records.jsonl").decode().splitlines()
    assert len(lines) == shown == 11 and all("(take 19" in line for line in lines)
    assert re.search(
        rf"Exported {shown} records matching the filter", link.locator("..").inner_text()
    )
    search.fill("")
    page.wait_for_function(
        "document.querySelectorAll('.cometnb-history .cometnb-history-entry').length === 20",
        timeout=WAIT_MS,
    )


TOOLBAR_CLIPPED = """() => {
    const inside = Math.min(window.innerWidth,
        document.querySelector('.cometnb-history').getBoundingClientRect().right,
        document.querySelector('.cometnb-panel').getBoundingClientRect().right);
    const bars = ['.cometnb-history-toolbar > *', '.cometnb-pager > *']
        .map(b => '.cometnb-history ' + b).join(', ');
    const shown = [...document.querySelectorAll(bars)].filter(c => c.offsetParent !== null);
    return {controls: shown.length, clipped: shown.flatMap(c => {
        const box = c.getBoundingClientRect();
        const name = c.innerText || c.querySelector('input')?.placeholder || c.className;
        const bad = [];
        if (box.right > inside + 0.5) bad.push({name, out: box.right - inside});
        for (const e of [c, ...c.querySelectorAll('button, input, select')]) {
            const r = e.getBoundingClientRect();
            if (r.right > box.right + 0.5) bad.push({name, sticksOut: r.right - box.right});
            if (e.matches('button') && e.scrollWidth > e.clientWidth + 1)
                bad.push({name, truncated: e.scrollWidth - e.clientWidth});
        }
        return bad; })}; }"""


def _check_narrow_history(page: Any, home: Path, width: int) -> None:
    """In a narrow Lab window the toolbars wrap: no control is cut off, rows stay readable."""
    page.set_viewport_size({"width": width, "height": 1200})
    page.wait_for_function(
        f"document.querySelector('.cometnb-panel').getBoundingClientRect().width < {width}",
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(500)  # let Lab finish laying out after the resize (not timed)
    # 4 filters, 3 actions, Newer / label / Older: all found, none clipped
    assert page.evaluate(TOOLBAR_CLIPPED) == {"controls": 10, "clipped": []}, width
    rows: list[dict[str, Any]] = page.evaluate(ROW_BOXES)
    assert rows and all(r["promptWidth"] >= 120 for r in rows), (width, rows[:3])
    page.locator(".cometnb-history").screenshot(path=str(home / f"panel-history-{width}.png"))
    page.set_viewport_size({"width": 1200, "height": 1000})


def _check_shift_enter_generates(page: Any) -> None:
    """Shift+Enter in the prompt presses Generate: a result, and no newline in the prompt."""
    images = "document.querySelectorAll('.cometnb-panel .cometnb-gallery img').length"
    before = page.evaluate(images)
    prompt = page.locator(".cometnb-panel .cometnb-prompt textarea")
    prompt.fill("a paper boat on a rainy street")
    prompt.press("Shift+Enter")
    page.wait_for_function(
        f"""() => {images} > {before}
                 && document.querySelector('.cometnb-panel .cometnb-generate')
                        .textContent.includes('Generate')""",
        timeout=WAIT_MS,
    )
    assert "a paper boat on a rainy street" in page.inner_text(".cometnb-panel .cometnb-gallery")
    assert prompt.input_value() == "a paper boat on a rainy street"


def _shot(target: Any, home: Path, name: str) -> Path:
    """A screenshot beside the notebooks, copied to $COMETNB_SHOTS when set."""
    path = home / name
    target.screenshot(path=str(path), animations="disabled")
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / name).write_bytes(path.read_bytes())
    assert path.stat().st_size > 5_000
    return path


VISIBLE_ROWS = """() => {
    const l = document.querySelector('.cometnb-history-list').getBoundingClientRect();
    return [...document.querySelectorAll('.cometnb-history .cometnb-history-entry')]
        .filter(e => { const r = e.getBoundingClientRect();
                       return r.top >= l.top - 1 && r.bottom <= l.bottom + 1; }).length; }"""


def _check_dense_list(page: Any, home: Path) -> None:
    """The list takes most of a 1000 px window and shows 8+ whole rows with size, quality,
    cost; the live panel hides its static summary; the model filter has no typo'd model."""
    page.set_viewport_size({"width": 1200, "height": 1000})
    page.locator(".cometnb-history-list").scroll_into_view_if_needed()
    height = page.evaluate(
        "document.querySelector('.cometnb-history-list').getBoundingClientRect().height"
    )
    assert height >= 600, height  # min(70vh, …): 700 px here, was 460
    assert page.evaluate(VISIBLE_ROWS) >= 8
    meta = page.locator(".cometnb-history .cometnb-history-meta").first.inner_text()
    assert re.search(r"\d+x\d+", meta) and ("$" in meta or "cost unknown" in meta), meta
    static = page.locator(".cometnb-static")
    assert static.count() == 1 and not static.is_visible()  # shown only without the widget
    options = page.locator(".cometnb-history select >> nth=0").inner_text().replace("\xa0", " ")
    assert "gpt-imag-2 (failed only)" in options and options.count("gpt-imag-2") == 1
    _shot(page.locator(".cometnb-history-list"), home, "panel-200-records.png")


def _check_failed_row(page: Any, home: Path) -> None:
    """A failed row shows its reason; a click opens the full text; Retry is there."""
    row = page.locator(".cometnb-history .cometnb-history-failed:has(details)").first
    row.scroll_into_view_if_needed()
    summary = row.locator("details summary")
    assert "(more)" in summary.inner_text()
    summary.click()
    full = row.locator("details div")
    full.wait_for(state="visible", timeout=WAIT_MS)
    assert len(full.inner_text()) > len(summary.inner_text()) - 10
    assert row.locator(".cometnb-retry").is_visible()
    _shot(row, home, "panel-failed-row.png")


def _check_edit_carries_settings(page: Any, home: Path) -> None:
    """Edit on a gpt-image-1 row: the form takes its model, size, quality and says so."""
    page.locator(".cometnb-panel .cometnb-model input").fill("gpt-image-2")
    page.select_option(".cometnb-panel .cometnb-quality select", "high")
    row = page.locator(
        ".cometnb-history .cometnb-history-entry:has(.cometnb-history-meta:text-matches("
        "'gpt-image-1 · .* · low'))"
    ).first
    row.locator(".cometnb-edit").click()
    message = page.locator(".cometnb-panel .cometnb-message")
    page.wait_for_function(
        "document.querySelector('.cometnb-panel .cometnb-message').innerText"
        ".includes('Settings from record')",
        timeout=WAIT_MS,
    )
    text = message.inner_text()
    assert "was gpt-image-2" in text and "high" in text and "now gpt-image-1" in text, text
    assert page.locator(".cometnb-panel .cometnb-model input").input_value() == "gpt-image-1"
    page.evaluate("window.scrollTo(0, 0)")
    top = page.locator(".cometnb-panel")
    top.scroll_into_view_if_needed()
    page.set_viewport_size({"width": 1200, "height": 1000})
    _shot(page, home, "panel-edit-carries.png")
    page.click(".cometnb-panel .cometnb-edit-clear")


def test_panel_with_a_long_history_in_jupyterlab(lab: str, browser: Any, home: Path) -> None:
    page = _open_notebook(browser, lab, "history.ipynb")
    try:
        rows = _check_rows(page)
        assert rows[0]["prompt"].endswith(f"(take {SEEDED})")  # newest first
        _check_controls_fit(page)
        label = page.locator(".cometnb-history .cometnb-page-label")
        assert label.inner_text() == f"1–{PAGE_ROWS} of {SEEDED}"
        shot = home / "panel-history.png"  # the first page, as a person opening it sees it
        _screenshot(page, shot, SCREENSHOT)
        assert shot.stat().st_size > 10_000
        _check_dense_list(page, home)
        _check_failed_row(page, home)
        _check_edit_carries_settings(page, home)
        page.click(".cometnb-history .cometnb-page-older")
        page.wait_for_function(
            "document.querySelector('.cometnb-history .cometnb-history-prompt').innerText"
            f".endsWith('(take {SEEDED - PAGE_ROWS})')",
            timeout=WAIT_MS,
        )
        assert label.inner_text() == f"{PAGE_ROWS + 1}–{2 * PAGE_ROWS} of {SEEDED}"
        _check_rows(page)
        page.click(".cometnb-history .cometnb-page-newer")
        _check_live_validation(page)
        _check_export_link(page)
        for width in (850, 700):
            _check_narrow_history(page, home, width)
        _check_shift_enter_generates(page)
    finally:
        page.close()


def test_panel_with_a_long_history_in_voila(browser: Any, home: Path) -> None:
    pytest.importorskip("voila")
    port = _free_port()
    cmd = [
        *("timeout", "300"),
        *(sys.executable, "-m", "voila", "history.ipynb", "--no-browser"),
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
    ]
    with open(home / "voila.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=home, env=_kernel_env(home), stdout=log, stderr=log)
    try:
        # GET / would run the notebook in a kernel: probe a static path instead.
        _wait_ready(proc, f"http://127.0.0.1:{port}/voila/static/", home)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        try:
            page.route("https://**", lambda route: route.abort())  # offline: no CDN fonts
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            page.wait_for_selector(".cometnb-panel .cometnb-generate", timeout=60_000)
            _check_rows(page)
            static = page.locator(".cometnb-static")  # the summary for kernel-less renderers
            assert static.count() == 1 and not static.is_visible()
            _check_live_validation(page)
            shot = home / "panel-voila.png"
            _screenshot(page, shot, VOILA_SCREENSHOT)
            assert shot.stat().st_size > 10_000
            _check_shift_enter_generates(page)
        finally:
            page.close()
    finally:
        _stop(proc)


def test_shift_enter_generates_in_notebook_7(browser: Any, home: Path) -> None:
    """Notebook 7 matches its shortcuts in the capture phase: Shift+Enter in the prompt must
    still press Generate, not run the cell (which would replace the panel and add a cell)."""
    pytest.importorskip("notebook")
    port = _free_port()
    cmd = [
        *("timeout", "300"),
        *(sys.executable, "-m", "jupyter", "notebook", "--no-browser", "--allow-root"),
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={home}",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]
    with open(home / "notebook7.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=home, env=_kernel_env(home), stdout=log, stderr=log)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/api/status?token={TOKEN}", home)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        try:
            page.goto(f"http://127.0.0.1:{port}/notebooks/panel.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
            page.click(".lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
            page.wait_for_selector(".cometnb-panel .cometnb-generate", timeout=60_000)
            cells = "document.querySelectorAll('.jp-Notebook .jp-Cell').length"
            before = page.evaluate(cells)
            page.fill(".cometnb-panel .cometnb-model input", "gpt-image-1-mini")
            _check_shift_enter_generates(page)
            assert page.evaluate(cells) == before  # the cell did not run again
        finally:
            page.close()
    finally:
        _stop(proc)


# --- nbconvert: the panel without a live kernel --------------------------------------------------

RUN_PANEL = """import asyncio
p = cometnb.panel(open_history=False)
p"""
MAKE_TWO = """for prompt in ("a lighthouse at dusk, oil painting", "a red fox in fresh snow"):
    p.prompt.value, p.model.value, p.quality.value = prompt, "gpt-image-1-mini", "low"
    assert p.submit() is not None
    while p.tasks.busy:
        await asyncio.sleep(0.05)
print(len(p.generations), "results")"""


@pytest.mark.parametrize("widget_state", [False, True], ids=["no-widget-state", "widget-state"])
def test_nbconvert_html_of_a_notebook_holding_a_panel(
    browser: Any, home: Path, widget_state: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Executed by nbclient, exported by nbconvert's HTML exporter, opened offline in Chromium:
    the panel's static summary shows its settings and both results as images, never the raw
    ``Panel(children=…`` text, with or without the widget state saved."""
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in (SETUP, RUN_PANEL, MAKE_TWO)]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    work = home / f"nbconvert-{widget_state}"
    work.mkdir(exist_ok=True)
    env = _kernel_env(home)
    for name in ("COMETAPI_KEY", "COMETAPI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the kernel inherits them
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", store_widget_state=widget_state,
        resources={"metadata": {"path": str(work)}},
    )  # fmt: skip
    client.execute()
    assert "2 results" in "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert ("widgets" in nb.metadata) is widget_state
    page_html, _ = HTMLExporter().from_notebook_node(nb)
    assert "Panel(children=" not in page_html
    assert page_html.count("cometnb-static") >= 1
    target = work / "panel.html"
    target.write_text(page_html)
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    try:
        page.route("http*://**", lambda route: route.abort())  # offline: no CDN widget manager
        page.goto(target.as_uri())
        static = page.locator(".cometnb-static")
        static.wait_for(state="visible", timeout=WAIT_MS)
        text = static.inner_text()
        assert "gpt-image-1-mini · default size · low" in text
        assert "a red fox in fresh snow" in text and "a lighthouse at dusk" in text
        images = static.locator("img")
        assert images.count() == 2
        loaded = page.evaluate(
            "[...document.querySelectorAll('.cometnb-static img')]"
            ".map(i => i.complete && i.naturalWidth > 0)"
        )
        assert loaded == [True, True]
        assert "Panel(children" not in page.inner_text("body")
        _shot(page, home, f"panel-nbconvert{'-state' if widget_state else ''}.png")
    finally:
        page.close()
