"""SVG and GIF cards in a real JupyterLab (issue 23 point 3): ``%%cometimg -f svg`` against a
simulator whose SVG carries a ``<script>`` and an ``onload`` handler shows a raster preview and
a download link, and nothing of the SVG runs or is in the page; ``-f gif`` shows a card whose
preview animates. Screenshots of both cards go to ``$COMETNB_SHOTS`` (``/work/shots`` by
default, outside the repo) as ``svg-card.png`` and ``svg-gif-card.png``."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from PIL import Image
from test_browser import (  # the same server recipe and browser as the panel's test
    KERNEL_IDLE,
    LAB_SETTINGS,
    browser,
    serving_lab,
)

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # a fixture shared with test_browser.py

TOKEN = "cometnb-svg-gif-test"
SHOTS = Path(os.environ.get("COMETNB_SHOTS", "/work/shots"))
WAIT_MS = 60_000
SETUP = """%load_ext cometnb
from cometnb._core import settings as _settings
from cometnb.sim import SimServer
sim = SimServer(svg="hostile")
sim.start()
_settings.active().base_url = sim.base_url
_settings.set_session_key("sim-placeholder-key-for-tests")"""
SVG_CELL = "%%cometimg -m gpt-image-2.6-flare -f svg -q low\na flat vector logo of a lighthouse"
GIF_CELL = (
    "%%cometimg -m gpt-image-2.6-flare -f gif --frames 6 --frame-ms 150 -s 1024x1024 -q low\n"
    "a spinning top, looping"
)
# What the hostile SVG would do if it ever ran (sim/images.py), and the drawing's own text.
RAN = """() => ['svg script ran', 'svg onload ran'].some(t => document.title.includes(t))"""
_SELECTOR = ", ".join(f".jp-OutputArea {tag}" for tag in ("svg", "object", "iframe", "embed"))
SERVER_SVG = f"""() => [...document.querySelectorAll({_SELECTOR!r})]
    .filter(e => e.tagName.toLowerCase() !== 'svg' || e.outerHTML.includes('SIMULATED')).length"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("svghome")
    for name, value in LAB_SETTINGS.items():
        f = home / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    cells = [nbformat.v4.new_code_cell(c) for c in (SETUP, SVG_CELL, GIF_CELL)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(home / "formats.ipynb"))
    with serving_lab(home, TOKEN) as url:
        yield url, home


def _shot(locator: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    locator.screenshot(path=str(path), animations="disabled")
    assert path.stat().st_size > 5_000
    return path


def _preview_of(card: Any) -> bytes:
    src = card.locator("img").first.get_attribute("src")
    assert src is not None and src.startswith("data:image/")
    return base64.b64decode(src.split(",", 1)[1])


def test_svg_and_gif_cards_in_jupyterlab(lab: tuple[str, Path], browser: Any) -> None:
    url, _home = lab
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.goto(f"{url}/lab/tree/formats.ipynb?token={TOKEN}&reset", timeout=60_000)
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    page.click(".lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
    cards = page.locator(".jp-OutputArea .cometnb-card")
    cards.nth(1).wait_for(timeout=WAIT_MS)
    page.wait_for_function(KERNEL_IDLE, timeout=WAIT_MS)

    svg_card, gif_card = cards.nth(0), cards.nth(1)
    assert "svg 1024×1024" in svg_card.inner_text()
    assert "gif 1024×1024" in gif_card.inner_text()
    # The SVG card shows pixels and links the original as a download; nothing of it ran.
    preview = _preview_of(svg_card)
    assert b"<svg" not in preview
    with Image.open(io.BytesIO(preview)) as img:
        assert img.format in ("PNG", "WEBP") and max(img.size) == 512
    link = svg_card.locator("a[download]").first
    assert (link.get_attribute("href") or "").split("?")[0].endswith(".svg")  # Lab adds ?_xsrf
    loaded = svg_card.locator("img").first.evaluate("i => i.complete && i.naturalWidth")
    assert loaded == 512
    assert not page.evaluate(RAN)
    assert page.evaluate(SERVER_SVG) == 0
    # The GIF card's preview is animated: every frame and its duration.
    with Image.open(io.BytesIO(_preview_of(gif_card))) as img:
        durations = []
        for k in range(img.n_frames):
            img.seek(k)
            img.load()
            durations.append(img.info.get("duration"))
    assert durations == [150] * 6
    assert gif_card.locator("img").first.evaluate("i => i.complete && i.naturalWidth") == 512

    svg_card.scroll_into_view_if_needed()
    _shot(svg_card, "svg-card.png")
    gif_card.scroll_into_view_if_needed()
    _shot(gif_card, "svg-gif-card.png")
    _shot(page.locator(".jp-Notebook"), "svg-notebook.png")
    assert not page.evaluate(RAN)
    page.close()
