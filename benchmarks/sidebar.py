"""12. The history sidebar on a 10,000-record history, in headless Chromium.

Built once (not timed): 1,000 records through ``History.record_success`` (a failure every
50th), their index rows copied with new ids up to 10,000 (the copies name the same small
images, as in the 100,000-record benchmark), in a ``cometnb-history`` folder under the root of
a JupyterLab server started for the run with the built extension and the server extension.

Timed, medians over rounds (each "open" in a freshly loaded Lab page):

- **open**: ``cometnb:open-history`` executed → the first row's thumbnail decoded and painted
  (the sidebar fetches nothing before it is first shown, so this includes listing the
  histories, the first records page and the first previews);
- **search**: the last keystroke typed into the search box → the matching records' cards
  drawn with the new total (includes the 200 ms typing pause the box waits for);
- **records page on the server**: ``GET cometnb/api/records`` (60 records) at the top, the
  middle and the end, with and without a text filter, timed from this process over loopback
  (an upper bound on what the server spends);
- **scrolling**: 120 animation frames scrolling 2,000 px each through the list: frame
  intervals, and how many cards are in the page (only the rows in view are).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from ._harness import NotRun, Result, median, ms, need, workdir
from .history_100k import _copy_rows
from .history_scale import SHM, _build

TITLE = "History sidebar (10,000 records: open, search, server page, scrolling; Chromium)"
RECORDS = 10_000
SEED = 1_000
ROUNDS = 3
TOKEN = "cometnb-bench"
OPEN_GOAL_S = 1.0
SEARCH_GOAL_S = 0.300
PAGE_GOAL_S = 0.050
SEARCHES = ("kite", "record 77", "dunes copy 9", "no such words")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
SETTINGS = {
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# In the page: run the command, then wait for the first card's thumbnail to be decoded and
# for a frame to be painted after it.
# Every wait gives up after 30 s (a broken build must not hang the run).
UNTIL = """const until = (ready) => new Promise((done, fail) => {
  const t0 = performance.now();
  const tick = () => {
    if (ready()) { requestAnimationFrame(() => done()); }
    else if (performance.now() - t0 > 30000) { fail(new Error('timed out: ' + ready)); }
    else { requestAnimationFrame(tick); }
  };
  tick();
});"""
OPEN_JS = f"""async () => {{
  {UNTIL}
  const t0 = performance.now();
  await window.jupyterapp.commands.execute('cometnb:open-history');
  await until(() => {{
    const img = document.querySelector('#cometnb-history-sidebar .cometnb-sb-card img');
    return img && img.complete && img.naturalWidth > 0;
  }});
  return performance.now() - t0;
}}"""
# Type the query one key at a time; time from the last key to the new results drawn.
SEARCH_JS = f"""async ([text, expected]) => {{
  {UNTIL}
  const box = document.querySelector('.cometnb-sb-search');
  const status = document.querySelector('.cometnb-sb-status');
  const says = expected === 0 ? 'No record matches.'
    : expected.toLocaleString('en-US') + (expected === 1 ? ' record' : ' records');
  box.value = '';
  box.dispatchEvent(new Event('input'));
  await new Promise(r => setTimeout(r, 400));
  let t0 = 0;
  for (const ch of text) {{
    box.value += ch;
    t0 = performance.now();
    box.dispatchEvent(new Event('input'));
    await new Promise(r => setTimeout(r, 30));
  }}
  await until(() => status.textContent === says && (expected === 0
    || document.querySelector('.cometnb-sb-gallery .cometnb-sb-card[data-id]')));
  return performance.now() - t0;
}}"""
SCROLL_JS = """async () => {
  const grid = document.querySelector('.cometnb-sb-gallery');
  grid.scrollTop = 0;
  const gaps = []; let most = 0; let last = performance.now();
  for (let i = 0; i < 120; i++) {
    grid.scrollTop += 2000;
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now(); gaps.push(now - last); last = now;
    most = Math.max(most, grid.querySelectorAll('.cometnb-sb-card').length);
  }
  gaps.sort((a, b) => a - b);
  return {median: gaps[gaps.length >> 1], p95: gaps[Math.floor(gaps.length * 0.95)],
          cards: most, top: grid.scrollTop};
}"""


def run() -> Result:
    history_mod = need("cometnb.history")
    need("cometnb._server")
    chromium = shutil.which("chromium")
    if chromium is None:
        raise NotRun("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise NotRun("playwright is not installed") from exc
    result = Result(TITLE)
    with workdir("sidebar-", base=SHM if SHM.is_dir() else None) as root:
        folder = root / "cometnb-history"
        start = time.perf_counter()
        _build(history_mod, folder, records=SEED)
        _copy_rows(folder / "index.sqlite3", RECORDS)
        result.row("time to build the history (not a goal)", f"{time.perf_counter() - start:.1f} s")
        hist = history_mod.History(folder)
        expected = {text: len(hist.find(text=text)) for text in SEARCHES}
        hist.close()
        port, server = _start_lab(root)
        try:
            base = f"http://127.0.0.1:{port}"
            pages = _server_pages(base)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
                try:
                    opens, searches, scroll = _in_browser(browser, base, expected)
                finally:
                    browser.close()
        finally:
            server.terminate()
            server.wait(30)
    _report(result, opens, searches, pages, scroll, expected)
    return result


def _start_lab(root: Path) -> tuple[int, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    for name, value in SETTINGS.items():
        f = root / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=f"{root}/cfg",
        JUPYTER_RUNTIME_DIR=f"{root}/rt",
        JUPYTERLAB_SETTINGS_DIR=f"{root}/settings",
        JUPYTERLAB_WORKSPACES_DIR=f"{root}/ws",
    )
    env.pop("COMETNB_HISTORY", None)
    cmd = [
        *("timeout", "600"),
        *(sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root"),
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = open(root / "server.log", "ab")  # noqa: SIM115 (the server's whole life)
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", timeout=2)
            return port, proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.25)
    proc.terminate()
    raise RuntimeError("jupyter lab did not start:\n" + (root / "server.log").read_text())


def _get(url: str) -> tuple[float, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.loads(answer.read())
    return time.perf_counter() - start, body


def _server_pages(base: str) -> dict[str, list[float]]:
    _, listing = _get(f"{base}/cometnb/api/histories")
    hid = listing["histories"][0]["id"]
    cases = {
        "top (offset 0)": "offset=0",
        "middle (offset 5,000)": "offset=5000",
        "end (offset 9,940)": "offset=9940",
        "text filter 'kite', offset 0": "q=kite&offset=0",
        "status=error, offset 60": "status=error&offset=60",
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(3):  # warm-up: the first answers open the index
        _get(f"{base}/cometnb/api/records?history={hid}&limit=60")
    for _ in range(15):
        for name, query in cases.items():
            spent, body = _get(f"{base}/cometnb/api/records?history={hid}&limit=60&{query}")
            assert body["records"], name
            times[name].append(spent)
    return times


def _in_browser(
    browser: Any, base: str, expected: dict[str, int]
) -> tuple[list[float], dict[str, list[float]], dict[str, Any]]:
    opens: list[float] = []
    searches: dict[str, list[float]] = {text: [] for text in SEARCHES}
    scroll: dict[str, Any] = {}
    for _ in range(ROUNDS):
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(f"{base}/lab?token={TOKEN}&reset", timeout=120_000)
        page.wait_for_function(
            "() => window.jupyterapp?.commands.hasCommand('cometnb:open-history')",
            timeout=120_000,
        )
        page.evaluate("() => window.jupyterapp.restored.then(() => true)")
        page.wait_for_timeout(1000)  # let Lab's own start-up requests settle
        opens.append(page.evaluate(OPEN_JS) / 1000)
        for text in SEARCHES:
            searches[text].append(page.evaluate(SEARCH_JS, [text, expected[text]]) / 1000)
        page.evaluate(SEARCH_JS, ["", RECORDS])
        scroll = page.evaluate(SCROLL_JS)
        page.close()
    return opens, searches, scroll


def _report(
    result: Result,
    opens: list[float],
    searches: dict[str, list[float]],
    pages: dict[str, list[float]],
    scroll: dict[str, Any],
    expected: dict[str, int],
) -> None:
    result.row("records", f"{RECORDS:,}")
    result.row(f"open → first thumbnail painted (median of {ROUNDS})", ms(median(opens)))
    for text, spent in searches.items():
        result.row(
            f"search '{text}' ({expected[text]:,} matches): last key → drawn",
            ms(median(spent)),
        )
    for name, spent in pages.items():
        result.row(f"GET records, 60 per page, {name} (median of 15)", ms(median(spent)))
    result.row(
        "scrolling 2,000 px per frame: median / p95 frame",
        f"{scroll['median']:.1f} / {scroll['p95']:.1f} ms",
    )
    result.row("most cards in the page while scrolling", str(scroll["cards"]))
    open_s = median(opens)
    result.goal(
        "first page visible after opening",
        "< 1 s",
        ms(open_s),
        open_s < OPEN_GOAL_S,
        "the first records page or its previews are slow to come",
    )
    worst = max(median(v) for v in searches.values())
    result.goal(
        "a search answers (slowest query's median)",
        "< 300 ms",
        ms(worst),
        worst < SEARCH_GOAL_S,
        "the 200 ms typing pause leaves the server 100 ms",
    )
    slowest = max(median(v) for v in pages.values())
    result.goal(
        "a records page costs the server (slowest case's median)",
        "< 50 ms",
        ms(slowest),
        slowest < PAGE_GOAL_S,
        "the page query is not using the index",
    )
    result.notes.append(
        "Timed in the page with performance.now(); the search time includes the box's 200 ms "
        "pause after the last key. Server figures are loopback round trips from the benchmark "
        "process (an upper bound on the server's own time)."
    )
