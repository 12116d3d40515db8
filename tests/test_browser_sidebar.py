"""The history sidebar end to end: JupyterLab on loopback with the server extension and the
built front-end extension, driven by headless Chromium, over a realistic history
(``_seed_history.seed_mixed``: 220 records with failures, cancellations, long prompts, five
models and tags, plus an edit chain three deep with a mask, revised prompts, two images in one
record, a missing preview, records without a stored cost and a scripted SVG).

Opened by its command, the sidebar shows thumbnails (only the rows in view are in the page);
typing searches as you type, the status filter keeps the failures, a chain's last edit opens
with its ancestors and inputs, "Insert cell" puts its ``%%cometimg`` cell into the open
notebook, which runs against the simulator, and the new record appears in the sidebar without
a reload. Each step is photographed in the light and the dark theme
(``$COMETNB_SHOTS``, default ``/work/shots``, as ``sidebar-<step>-<theme>.png``); the expected
counts come from ``History.find`` on the same folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _seed_history import seed_mixed
from test_browser import (  # the same server recipe and browser as the panel's test
    KERNEL_IDLE,
    LAB_SETTINGS,
    _kernel_env,
    browser,
    serving_lab,
)

from cometnb.history import History, Record

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # a fixture shared with test_browser.py

TOKEN = "cometnb-sidebar-test"
SEEDED = 220
WAIT_MS = 30_000
SHOTS = Path(os.environ.get("COMETNB_SHOTS", "/work/shots"))
# The kernel starts the simulator itself and writes beside the notebook (./cometnb-history),
# the folder the server discovers under its root.
SETUP = """%load_ext cometnb
from cometnb._core import settings as _settings
from cometnb.sim import SimServer
sim = SimServer(latency=0.05)
sim.start()
_settings.active().base_url = sim.base_url
_settings.set_session_key("sim-placeholder-key-for-tests")"""
THEME = "() => document.body.dataset.jpThemeLight"
CARDS = ".cometnb-sb-gallery .cometnb-sb-card[data-id]"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("sidebar")
    for name, value in LAB_SETTINGS.items():
        f = h / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    seed_mixed(h / "cometnb-history", SEEDED)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(h / "sidebar.ipynb"))
    return h


@pytest.fixture(scope="module")
def lab(home: Path) -> Iterator[str]:
    env = _kernel_env(home)
    del env["COMETNB_HISTORY"]  # the kernel writes ./cometnb-history, which the server finds
    with serving_lab(home, TOKEN, env) as url:
        yield url


@pytest.fixture(scope="module")
def page(lab: str, browser: Any) -> Iterator[Any]:
    pg = browser.new_page(viewport={"width": 1360, "height": 900})
    try:
        pg.goto(f"{lab}/lab/tree/sidebar.ipynb?token={TOKEN}&reset", timeout=60_000)
        pg.wait_for_selector(".jp-Notebook", timeout=60_000)
        pg.evaluate("() => window.jupyterapp.restored.then(() => true)")
        pg.wait_for_function(KERNEL_IDLE, timeout=60_000)
        yield pg
    finally:
        pg.close()


def _command(page: Any, command: str, args: dict[str, Any] | None = None) -> None:
    page.evaluate("([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}])


def _shoot(page: Any, step: str) -> None:
    """The step in the light theme, then the same in the dark one (and back)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for theme, light in (("light", "true"), ("dark", "false")):
        if page.evaluate(THEME) != light:
            name = "JupyterLab Light" if light == "true" else "JupyterLab Dark"
            _command(page, "apputils:change-theme", {"theme": name})
            page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
            page.wait_for_timeout(400)  # the theme's stylesheet applies after the flag
        page.screenshot(path=str(SHOTS / f"sidebar-{step}-{theme}.png"), animations="disabled")
    _command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")


def _status_says(page: Any, count: int) -> None:
    text = f"{count:,} record{'' if count == 1 else 's'}"
    page.wait_for_function(
        "t => document.querySelector('.cometnb-sb-status')?.textContent === t",
        arg=text,
        timeout=WAIT_MS,
    )


# Each large preview of the open record, once loaded: its drawn size (inside the border), the
# width it may take (the figure's) and where it is against the view that scrolls it.
DETAIL_IMAGES = """() => {
  const view = document.querySelector('.cometnb-sb-view-body').getBoundingClientRect();
  const imgs = [...document.querySelectorAll('.cometnb-sb-detail-image img')];
  if (!imgs.length || !imgs.every(i => i.complete && i.naturalWidth > 0)) return null;
  return imgs.map(i => {
    const r = i.getBoundingClientRect();
    return {w: i.clientWidth, h: i.clientHeight, room: i.parentElement.clientWidth,
            top: r.top, bottom: r.bottom, viewTop: view.top, viewBottom: view.bottom,
            vh: window.innerHeight};
  });
}"""


def _open_detail(page: Any, hist: History, rec: Record) -> list[dict[str, float]]:
    """``rec``'s detail view from the gallery (searched by its prompt); its images' boxes."""
    if page.locator(".cometnb-sb-back").is_visible():
        page.click(".cometnb-sb-back")
    page.fill(".cometnb-sb-search", rec.prompt)
    _status_says(page, len(hist.find(text=rec.prompt)))
    page.click(f".cometnb-sb-card[data-id='{rec.id}']", timeout=WAIT_MS)
    page.wait_for_function(
        "id => document.querySelector('.cometnb-sb-detail .cometnb-sb-settings')"
        "?.textContent.includes(id)",
        arg=rec.id,
        timeout=WAIT_MS,
    )
    loaded = page.wait_for_function(DETAIL_IMAGES, timeout=WAIT_MS)
    boxes: list[dict[str, float]] = loaded.json_value()
    return boxes


def _assert_whole(rec: Record, boxes: list[dict[str, float]]) -> None:
    """Each image drawn at its own aspect (within 3 px), as wide as the sidebar unless that
    would pass half the window's height; the first one entirely in view."""
    assert len(boxes) == len(rec.images)
    for image, box in zip(rec.images, boxes, strict=True):
        assert image.width and image.height
        assert abs(box["h"] - box["w"] * image.height / image.width) <= 3, (image, box)
        assert box["h"] <= box["vh"] / 2 + 1, box
        assert box["w"] >= box["room"] - 3 or box["h"] >= box["vh"] / 2 - 3, box
    first = boxes[0]
    assert first["viewTop"] <= first["top"] and first["bottom"] <= first["viewBottom"], first


def _rendered_prompts(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        CARDS, "cards => cards.map(c => c.querySelector('.cometnb-sb-card-prompt').textContent)"
    )


def test_the_sidebar_browses_searches_filters_and_follows_a_kernel(page: Any, home: Path) -> None:
    hist = History(home / "cometnb-history")
    total = len(hist)
    assert total > 220

    # Opened by its command: thumbnails, newest first, only the rows in view in the page.
    _command(page, "cometnb:open-history")
    page.wait_for_selector("#cometnb-history-sidebar .cometnb-sb-card img", timeout=WAIT_MS)
    _status_says(page, total)
    newest = hist[-1]
    assert page.get_attribute(f"{CARDS} >> nth=0", "data-id") == newest.id
    rendered = page.locator(CARDS).count()
    assert 0 < rendered < 40 < total  # virtual: a screenful and a little more
    src = page.get_attribute("#cometnb-history-sidebar .cometnb-sb-card img >> nth=0", "src")
    assert "/cometnb/api/records/" in (src or "") and "/preview" in (src or "")
    _shoot(page, "open")

    # Search as you type: each keystroke is typed, the list follows the words.
    page.locator(".cometnb-sb-search").press_sequentially("lighthouse", delay=40)
    _status_says(page, len(hist.find(text="lighthouse")))
    prompts = _rendered_prompts(page)
    assert prompts and all("lighthouse" in p.lower() for p in prompts)
    _shoot(page, "search")

    # The status filter: only failures, each with its mark and reason.
    page.fill(".cometnb-sb-search", "")
    page.click(".cometnb-sb-filters summary")
    page.select_option(".cometnb-sb-filter-status", "error")
    _status_says(page, len(hist.find(status="error")))
    errors = page.locator(f"{CARDS}.cometnb-sb-mod-error")
    assert errors.count() == page.locator(CARDS).count() > 0
    assert "Failed" in errors.first.inner_text()
    _shoot(page, "failed")

    # The detail view of a chain's last edit: lineage strip, inputs (one with a mask).
    page.select_option(".cometnb-sb-filter-status", "")
    page.click(".cometnb-sb-filters summary")
    edit = next(r for r in reversed(list(hist)) if r.ok and len(hist.lineage(r)) == 4)
    assert [s.role for s in edit.sources] == ["image", "mask"]
    _assert_whole(edit, _open_detail(page, hist, edit))
    _shoot(page, "detail")  # at the top: the whole image
    page.locator(".cometnb-sb-lineage-item img").nth(3).wait_for(state="attached", timeout=WAIT_MS)
    page.locator(".cometnb-sb-lineage").scroll_into_view_if_needed()
    items = page.locator(".cometnb-sb-lineage-item")
    assert items.count() == len(hist.lineage(edit)) == 4
    assert items.nth(3).get_attribute("aria-current") == "true"
    assert page.locator(".cometnb-sb-source img").count() == len(edit.sources) >= 1
    assert "gpt-image-1" in page.inner_text(".cometnb-sb-settings")
    _shoot(page, "detail-lineage")  # scrolled down to the chain: the image is above the fold

    # Insert its cell into the open notebook, run it (simulator): a new record.
    page.click(".cometnb-sb-detail-actions button:has-text('Insert cell')")
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
    cell.wait_for(timeout=WAIT_MS)
    source = cell.locator(".jp-InputArea-editor").inner_text()
    assert source.startswith("%%cometimg -m gpt-image-1") and edit.prompt in source
    page.click(".cometnb-sb-back")
    page.fill(".cometnb-sb-search", "")
    _status_says(page, total)
    _command(page, "notebook:run-all-cells")
    page.wait_for_selector(
        ".jp-Notebook .jp-Cell >> nth=1 >> .jp-OutputArea-output", timeout=WAIT_MS
    )
    page.wait_for_function(KERNEL_IDLE, timeout=WAIT_MS)

    # ... and the sidebar shows it on its own (a poll, no reload).
    _status_says(page, total + 1)
    made = History(home / "cometnb-history")[-1]
    assert made.prompt == edit.prompt and made.model == "gpt-image-1" and made.ok
    page.wait_for_selector(f"{CARDS}[data-id='{made.id}'] img", timeout=WAIT_MS)
    assert page.get_attribute(f"{CARDS} >> nth=0", "data-id") == made.id
    _shoot(page, "live")


def test_the_detail_view_shows_each_image_whole_at_its_aspect(page: Any, home: Path) -> None:
    """Portrait, landscape (a small one and a 900×600 whose preview is scaled down), square
    and a record of two images of different shapes: each large preview is whole, full
    sidebar width or 50vh tall, with the aspect of the image the record keeps, in a tall and
    a short window."""
    hist = History(home / "cometnb-history")
    _command(page, "cometnb:open-history")
    page.wait_for_selector("#cometnb-history-sidebar .cometnb-sb-card img", timeout=WAIT_MS)

    def newest(rec: Record) -> bool:  # the first card its prompt's search shows
        return hist.find(text=rec.prompt)[-1].id == rec.id

    shapes: dict[str, Record] = {}
    for rec in reversed(list(hist)):
        if not (rec.ok and rec.images and rec.images[0].format in ("png", "jpeg", "webp")):
            continue
        first = rec.images[0]
        assert first.width and first.height
        shape = "landscape" if first.width > first.height else "portrait"
        shape = "square" if first.width == first.height else shape
        shape = "several" if len(rec.images) > 1 else shape
        shape = "large" if first.width >= 600 else shape
        if shape not in shapes and newest(rec):
            shapes[shape] = rec
    assert sorted(shapes) == ["landscape", "large", "portrait", "several", "square"]
    several = shapes["several"].images
    assert several[0].width / several[0].height != several[1].width / several[1].height
    try:  # a tall window (the sidebar's width limits) and a short one (50vh limits portraits)
        for height in (900, 560):
            page.set_viewport_size({"width": 1360, "height": height})
            for rec in shapes.values():
                _assert_whole(rec, _open_detail(page, hist, rec))
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})
    page.click(".cometnb-sb-back")
    page.fill(".cometnb-sb-search", "")


def test_the_keyboard_reaches_every_record_and_action(page: Any, home: Path) -> None:
    hist = History(home / "cometnb-history")
    _command(page, "cometnb:open-history")
    page.fill(".cometnb-sb-search", "")
    _status_says(page, len(hist))
    page.focus(".cometnb-sb-search")
    page.keyboard.press("ArrowDown")  # from the search box into the gallery
    assert page.evaluate("() => document.activeElement.classList.contains('cometnb-sb-gallery')")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    active = page.get_attribute(".cometnb-sb-gallery", "aria-activedescendant")
    assert active and page.get_attribute(f"#{active}", "aria-posinset") == "3"
    page.keyboard.press("Space")  # select two for comparison
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Space")
    assert page.locator(f"{CARDS}[aria-selected='true']").count() == 2
    page.click(".cometnb-sb-compare-button")  # side by side, in a main-area tab
    columns = page.locator("#cometnb-compare .cometnb-sb-compare-column")
    columns.nth(1).wait_for(timeout=WAIT_MS)
    assert columns.count() == 2
    assert page.locator("#cometnb-compare tr.cometnb-sb-mod-diff").count() >= 1
    _shoot(page, "compare")
    page.focus(".cometnb-sb-gallery")
    page.keyboard.press("Enter")  # the active record's detail
    page.wait_for_selector(".cometnb-sb-detail", timeout=WAIT_MS)
    assert page.evaluate("() => document.activeElement.classList.contains('cometnb-sb-back')")
    page.keyboard.press("Escape")  # back to the gallery, focus on it
    assert page.evaluate("() => document.activeElement.classList.contains('cometnb-sb-gallery')")


def test_notebook_7_has_the_sidebar_and_inserts_into_its_notebook(
    lab: str, browser: Any, home: Path
) -> None:
    """Notebook 7's notebook page: the same command opens the sidebar in its left area,
    records show, a comparison opens in the sidebar (one main widget there) and Insert cell
    reaches the page's notebook."""
    hist = History(home / "cometnb-history")
    pg = browser.new_page(viewport={"width": 1360, "height": 900})
    try:
        pg.goto(f"{lab}/notebooks/sidebar.ipynb?token={TOKEN}", timeout=60_000)
        pg.wait_for_selector(".jp-Notebook", timeout=60_000)
        pg.wait_for_function(
            "() => window.jupyterapp?.commands.hasCommand('cometnb:open-history')",
            timeout=60_000,
        )
        pg.evaluate("() => window.jupyterapp.restored.then(() => true)")
        _command(pg, "cometnb:open-history")
        pg.wait_for_selector("#cometnb-history-sidebar .cometnb-sb-card img", timeout=WAIT_MS)
        _status_says(pg, len(hist))
        cards = pg.locator(CARDS)
        cards.nth(0).locator(".cometnb-sb-card-check").click()
        cards.nth(1).locator(".cometnb-sb-card-check").click()
        pg.click(".cometnb-sb-compare-button")
        pg.locator("#cometnb-history-sidebar .cometnb-sb-compare-column").nth(1).wait_for(
            timeout=WAIT_MS
        )
        pg.click(".cometnb-sb-back")
        cells = pg.locator(".jp-Notebook .jp-Cell").count()
        pg.locator(f"{CARDS}:has(img)").nth(2).click()
        pg.click(".cometnb-sb-detail-actions button:has-text('Insert edit cell')")
        pg.wait_for_function(
            f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length > {cells}",
            timeout=WAIT_MS,
        )
        text = pg.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-InputArea-editor").inner_text()
        assert text.startswith("%%cometimg -m ") and " --image @" in text
        pg.screenshot(path=str(SHOTS / "sidebar-notebook7-light.png"), animations="disabled")
    finally:
        pg.close()
